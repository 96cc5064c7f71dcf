"""TaI-DPT's training captions (``DATASET.TRAIN_SOURCE captions``): their labels over the trained
classes, the loader over them and their frozen text features (the package docstring says which)."""
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ...engine.data.datasets import class_split_indices

CAPTION_CACHE_FLOATS = 1 << 28  # 1 GiB of float32 token features kept in memory at most


class CaptionSet(Dataset):
    """Indices and targets of the training captions (features live in :class:`CaptionFeatures`)."""

    def __init__(self, targets):
        self.targets = torch.as_tensor(targets, dtype=torch.int64)

    def __len__(self):
        return self.targets.shape[0]

    def __getitem__(self, i):
        return {"img": i, "label": self.targets[i], "index": i}


def caption_targets(t, caps):
    """Multi-hot targets over trainer ``t``'s classes for ``[(text, dataset labels), ...]``:
    ``CAPTION_LABELS dataset`` the dataset's labels, ``match`` the class names and synonyms matched by
    the dataset's caption matcher (``datasets/captions.py``)."""
    texts = [c for c, _ in caps]
    names = list(t.dm.dataset.classnames)
    ship = np.stack([np.asarray(v) for _, v in caps]) if caps else np.zeros((0, len(names)), np.int8)
    if ship.shape[1] != len(names):  # labels over the full class list: cut to the trained columns
        sub = t.cfg.DATASET.SUBSAMPLE_CLASSES
        cols = class_split_indices(ship.shape[1], sub)
        if len(cols) != len(names):
            raise ValueError(f"captions() labels have {ship.shape[1]} columns; the dataset trains "
                             f"{len(names)} classes (SUBSAMPLE_CLASSES {sub})")
        ship = ship[:, cols]
    if str(t.tcfg.CAPTION_LABELS).lower() == "dataset":
        return texts, ship.astype(np.int64)
    if not hasattr(t.dm.dataset, "caption_matcher"):
        raise ValueError(f"TRAINER.{t.cfg_node}.CAPTION_LABELS match: dataset {t.cfg.DATASET.NAME} has no "
                         f"caption_matcher() (datasets.captions.CaptionLabels); use CAPTION_LABELS dataset")
    matcher = t.dm.dataset.caption_matcher(names, t.tcfg.SYNONYMS)
    matched = matcher.label(texts).astype(np.int64)
    agree = float((matched == (ship == 1)).mean() * 100) if len(texts) else 100.0
    t.logger.info(f"Caption labels: class names + synonyms ({len(matcher.synonyms)} entries) over {len(names)} "
                  f"classes; agreement with the dataset's labels {agree:.2f}% of entries")
    t.caption_label_agreement = agree
    return texts, matched


def caption_loader(t):
    """``(texts, loader)`` of trainer ``t``'s training captions (shuffled by a generator of the seed)."""
    ds, cfg = t.dm.dataset, t.cfg
    if not hasattr(ds, "captions"):
        raise ValueError(f"DATASET.TRAIN_SOURCE captions: dataset {cfg.DATASET.NAME} has no captions()")
    texts, targets = caption_targets(t, ds.captions(int(cfg.DATASET.NUM_CAPTIONS)))
    if not texts:
        raise ValueError(f"dataset {cfg.DATASET.NAME} returned no training captions")
    g = torch.Generator().manual_seed(max(int(cfg.SEED), 0) * 7919 + 17)
    loader = DataLoader(CaptionSet(targets), batch_size=cfg.DATALOADER.TRAIN_X.BATCH_SIZE,
                        shuffle=True, drop_last=False, num_workers=0, generator=g)
    n_pos = int((targets == 1).sum())
    t.logger.info(f"TaI-DPT trains on {len(texts):,} captions ({n_pos / len(texts):.2f} positive "
                  f"classes per caption) instead of the {len(ds.train_x):,} training images")
    return texts, loader


class CaptionFeatures:
    """Frozen features of trainer ``t``'s captions ``texts``: ``self(index)`` is ``{"global", "tokens",
    "mask"}`` of those captions, L2-normalised; computed once at build when they fit in
    :data:`CAPTION_CACHE_FLOATS` floats, else per batch."""

    def __init__(self, t, texts):
        self.t = t
        clip = t.clip
        ids = clip.tokenizer(texts)
        n_trunc = sum(1 for c in texts if (clip.count_tokens(c) or 0) + 2 > ids.shape[1])
        if n_trunc:
            t.logger.info(f"{n_trunc} captions are longer than the text context ({ids.shape[1]}) and were cut")
        self.ids = ids.cpu()
        n, length, e = ids.shape[0], ids.shape[1], clip.embed_dim
        self.cache = None
        if n * length * e <= CAPTION_CACHE_FLOATS:
            parts = [self.encode(ids[i:i + 512].to(t.device)) for i in range(0, n, 512)]
            self.cache = tuple(torch.cat(p) for p in zip(*parts))
            t.logger.info(f"Caption features cached: {n:,} x {length} tokens x {e}")

    @torch.no_grad()
    def encode(self, ids):
        """(global (B, E), token features (B, L, E), mask (B, L)), L2-normalised, of token ids."""
        clip = self.t.clip
        with clip.autocast():
            g, tok = clip.encode_text_embeddings(clip.embed_tokens(ids), ids, return_tokens=True)
        eot = clip.eot_positions(ids)
        pos = torch.arange(ids.shape[1], device=ids.device)[None, :]
        mask = (ids != 0) if self.t.tcfg.get("UPSTREAM_EXACT", False) else (pos >= 1) & (pos <= eot[:, None])
        return F.normalize(g.float(), dim=-1), F.normalize(tok.float(), dim=-1), mask

    def __call__(self, index):
        index = torch.as_tensor(index).long()
        if self.cache is not None:
            g, tok, mask = (x[index.to(self.t.device)] for x in self.cache)
        else:
            g, tok, mask = self.encode(self.ids[index].to(self.t.device))
        return {"global": g, "tokens": tok, "mask": mask}
