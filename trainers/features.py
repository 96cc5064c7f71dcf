"""Image features at evaluation: a split's L2-normalised features through the frozen-feature cache
(``TEST.CACHE_FEATURES``, ``engine/feature_cache.py``; trainers whose ``uncached_reason`` is empty),
the outputs of an evaluation scored from those features, and PIECE's proximity reference
(``TEST.PROXIMITY_POOL train``)."""
import torch

from ..engine import feature_cache


def split_image_features(t, data_source, split):
    """Features ``(N, E)`` of ``data_source`` (test transform, in order) under trainer ``t``'s
    ``image_features``, and whether they came from the cache (frozen encoders with the cache on)."""
    return feature_cache.split_features(
        t.cfg, t.clip, t.dm.tfm_test, data_source, t.image_features, t.device, split,
        use_cache=bool(t.cfg.TEST.CACHE_FEATURES) and t.frozen_image_encoder)


@torch.no_grad()
def cached_outputs(t, loader, split):
    """``collect_outputs`` of trainer ``t`` from the split's cached image features."""
    data_source = loader.dataset.data_source
    feats, _ = split_image_features(t, data_source, split)
    logits = []
    bs = t.cfg.DATALOADER.TEST.BATCH_SIZE
    for i in range(0, feats.shape[0], bs):
        with t.clip.autocast():
            logits.append(t.prob_map.logits(t.logits_from_features(feats[i:i + bs]).float()).cpu())
    labels = torch.stack([torch.as_tensor(d.label) for d in data_source])  # class ids or multi-hot rows
    return {"logits": torch.cat(logits), "features": feats.cpu(), "labels": labels,
            "index": torch.arange(len(data_source))}


@torch.no_grad()
def proximity_reference(t):
    """PIECE's neighbours from the training images when ``TEST.PROXIMITY_POOL`` is ``train``."""
    if str(t.cfg.TEST.PROXIMITY_POOL).lower() == "train" and t.dm.dataset.train_x:
        with t.clip.autocast():
            feats, _ = split_image_features(t, t.dm.dataset.train_x, "train")
        t.evaluator.set_proximity_reference(feats)
