"""TaI-DPT (Guo et al., CVPR 2023, "Texts as Images in Prompt Tuning for Multi-Label Image
Recognition"): double-grained prompts trained on captions as if they were images. README.md
("TaI-DPT") describes the caption labels, the caption corpus and the configs; keys and defaults:
``TRAINER.TAIDPT`` in ``trainers/config.py``.

Two generic contexts of ``N_CTX`` tokens in the shared :class:`~trainers.clip.PromptLearner`
layout, global (``ctx``) and local (``ctx_local``), give L2-normalised class text features
``t_g``, ``t_l`` ``(C, E)``. For an input with a global feature ``g`` ``(E,)`` and dense
features ``f_1..f_K`` ``(K, E)`` (all L2-normalised): ``cos_g[c] = <g, t_g[c]>``; ``cos_l[c] =
sum_k w_k[c] <f_k, t_l[c]>`` with ``w[c] = softmax_k(T * <f_k, t_l[c]>)``; merged ``m[c] =
GL_MERGE * cos_g[c] + (1 - GL_MERGE) * cos_l[c]``.

Captions (``DATASET.TRAIN_SOURCE captions``): ``g`` is the caption's EOT feature, ``f_k`` its
token features (the text tower's output after the final LayerNorm and the projection at
positions 1..EOT: the start token, the same for every caption under the causal mask, and the
padding are left out), ``T = SPATIAL_T_TEXT``; the frozen features are computed once at build
(kept in memory up to ``CAPTION_CACHE_FLOATS`` floats); ``CAPTION_LABELS match`` labels them by
the dataset's ``caption_matcher`` (class names and its synonym file; ``SYNONYMS`` overrides the
file), ``dataset`` takes the dataset's
labels (cut to the trained columns). Images (``TRAIN_SOURCE images``, and always at evaluation):
``g`` is CLIP's image feature, ``f_k`` a ViT's patch tokens (after ``ln_post`` and the projection)
or a ModifiedResNet's attention-pool value path at every location
(``ClipBackbone._resnet_dense``), ``T = SPATIAL_T_IMAGE``. ``UPSTREAM_EXACT True`` does
what upstream's ``Caption_distill_double.py`` (1333eca) does: the caption tokens pooled are those
of id != 0 (l. 347: the start token too), and a ModifiedResNet's attention pool and dense values
get no positional embedding (l. 306 ``if_pos=False``, l. 300).

Raw scores are ``LOGIT_SCALE * cos``. ``LOSS ranking`` (published, on each branch): ``sum_{i, p
in pos, n in neg} max(0, RANK_MARGIN - s_p + s_n) / B`` on the global and on the local raw scores
(-1 entries in neither set); ``bce``: :func:`trainers.base.masked_bce` on each branch's
calibration logits. The task loss never uses the merged score; CCR and the evaluator do, through
``p = sigmoid(a * m + b)``: ``PROB_FIT config`` takes ``a = BCE_SCALE`` (0: ``LOGIT_SCALE``),
``b = BCE_BIAS``, or the manifest's ``PROB_MAP``; ``PROB_FIT val`` fits ``(a, b)`` by BCE on the
validation split after training (never the test split), saved as ``prob_map.json`` beside the
checkpoints and read back by ``--eval-only --model-dir`` runs; CCR sees the config map during
training. On a single-label dataset the targets are one-hot and ``Classification`` gets
``LOGIT_SCALE * m``. The feature cache (``TEST.CACHE_FEATURES``) is not used: evaluation needs the
patch tokens.
"""
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..calibration.fileio import atomic_write_json
from ..engine.data.datasets import class_split_indices
from ..engine.trainer import TRAINER_REGISTRY, SimpleTrainer, get_rank
from .base import ClipPromptTrainer, masked_bce
from .clip import BackboneError, PromptLearner, encode_prompts
from .config import TAIDPT_LOSS_CHOICES
from .coop import build_coop_learner

CAPTION_CACHE_FLOATS = 1 << 28  # 1 GiB of float32 token features kept in memory at most
PROB_MAP_FILE = "prob_map.json"


def ranking_loss(scores, targets, margin=1.0):
    """Pairwise ranking loss ``mean_i sum_{p in P_i, n in N_i} max(0, margin - s_ip + s_in)`` of
    ``scores`` ``(B, C)``, ``P_i`` / ``N_i`` the entries 1 / 0 of ``targets`` row i (-1 in neither)."""
    targets = targets.to(scores.device)
    pos = (targets == 1).to(scores.dtype)
    neg = (targets == 0).to(scores.dtype)
    hinge = F.relu(margin - scores[:, :, None] + scores[:, None, :])  # [i, p, n]
    return (hinge * pos[:, :, None] * neg[:, None, :]).sum(dim=(1, 2)).mean()


def softmax_pool(cos_tok, temperature, mask=None):
    """Softmax pooling over tokens: ``sum_k softmax_k(T * cos_k) cos_k``.

    ``cos_tok`` ``(B, K, C)``; ``mask`` ``(B, K)`` bool of the tokens that count. Returns ``(B, C)``.
    """
    logits = temperature * cos_tok
    if mask is not None:
        logits = logits.masked_fill(~mask[:, :, None], float("-inf"))
    w = torch.softmax(logits, dim=1)
    return (w * cos_tok).sum(dim=1)


class DualPromptLearner(PromptLearner):
    """:class:`PromptLearner` with a second (local) context ``ctx_local`` of the same shape
    (:meth:`local_prompts`); drawn independently from N(0, 0.02^2), or ``ctx_init``'s embeddings."""

    def __init__(self, clip, classnames, **kw):
        super().__init__(clip, classnames, **kw)
        local = self.ctx.detach().clone()
        if not self.ctx_init:
            nn.init.normal_(local, std=0.02)
        self.ctx_local = nn.Parameter(local)

    def local_prompts(self):
        return self.assemble(self.ctx_local)


class _CaptionSet(Dataset):
    """Indices and targets of the training captions (features live in the trainer)."""

    def __init__(self, targets):
        self.targets = torch.as_tensor(targets, dtype=torch.int64)

    def __len__(self):
        return self.targets.shape[0]

    def __getitem__(self, i):
        return {"img": i, "label": self.targets[i], "index": i}


@TRAINER_REGISTRY.register()
class TaIDPT(ClipPromptTrainer):
    cfg_node = "TAIDPT"
    loss_choices = TAIDPT_LOSS_CHOICES
    onehot_single_label = True

    # --- configuration ------------------------------------------------
    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        t = cfg.TRAINER.TAIDPT
        key = "TRAINER.TAIDPT"
        if not 0.0 <= float(t.GL_MERGE) <= 1.0:
            raise ValueError(f"{key}.GL_MERGE must be in [0, 1], got {t.GL_MERGE}")
        for name, val, (a, b) in ((f"{key}.PROB_FIT", t.PROB_FIT, ("config", "val")),
                                  (f"{key}.CAPTION_LABELS", t.CAPTION_LABELS, ("match", "dataset")),
                                  ("DATASET.TRAIN_SOURCE", cfg.DATASET.TRAIN_SOURCE, ("images", "captions"))):
            if str(val).lower() not in (a, b):
                raise ValueError(f"{name} must be '{a}' or '{b}', got {val!r}")
        if float(t.LOGIT_SCALE) <= 0:
            raise ValueError(f"{key}.LOGIT_SCALE must be > 0, got {t.LOGIT_SCALE}")

    @property
    def raw_scale(self):
        return float(self.tcfg.LOGIT_SCALE)

    @property
    def prob_fit(self):
        return str(self.tcfg.PROB_FIT).lower()

    map_input = "merged_cosine"

    def probability_map(self):
        """``(a, b)`` of ``p = sigmoid(a * m + b)``; the fitted one once PROB_FIT val has run."""
        fitted = getattr(self, "_fitted_map", None)
        return fitted if fitted is not None else self.configured_probability_map()[:2]

    def probability_map_source(self):
        fitted = getattr(self, "_fitted_map", None) is not None
        return self._fitted_source if fitted else super().probability_map_source()

    # --- data -----------------------------------------------------------
    def build_data_loader(self):
        super().build_data_loader()
        self.train_source = str(self.cfg.DATASET.TRAIN_SOURCE).lower()
        self.captions_text = None
        if self.train_source == "captions":
            self._build_caption_loader()
        t = self.cfg.TEST
        if t.FINAL_MODEL == "best_val" and not t.NO_TEST and self.val_loader is None:
            raise ValueError(f"TEST.FINAL_MODEL best_val needs a validation split, and {self.cfg.DATASET.NAME} "
                             f"has none: TaI-DPT never selects a model on the test set (use last_step)")
        if self.prob_fit == "val" and self.val_loader is None:
            raise ValueError(f"TRAINER.TAIDPT.PROB_FIT val fits the probability map on the validation split, "
                             f"and {self.cfg.DATASET.NAME} has none; use PROB_FIT config")

    def _caption_targets(self, caps):
        """Multi-hot targets over the trained classes for ``[(text, dataset labels), ...]``."""
        texts = [c for c, _ in caps]
        names = list(self.dm.dataset.classnames)
        ship = np.stack([np.asarray(v) for _, v in caps]) if caps else np.zeros((0, len(names)), np.int8)
        if ship.shape[1] != len(names):  # labels over the full class list: cut to the trained columns
            sub = self.cfg.DATASET.SUBSAMPLE_CLASSES
            cols = class_split_indices(ship.shape[1], sub)
            if len(cols) != len(names):
                raise ValueError(f"captions() labels have {ship.shape[1]} columns; the dataset trains "
                                 f"{len(names)} classes (SUBSAMPLE_CLASSES {sub})")
            ship = ship[:, cols]
        if str(self.tcfg.CAPTION_LABELS).lower() == "dataset":
            return texts, ship.astype(np.int64)
        if not hasattr(self.dm.dataset, "caption_matcher"):
            raise ValueError(f"TRAINER.TAIDPT.CAPTION_LABELS match: dataset {self.cfg.DATASET.NAME} has no "
                             f"caption_matcher() (datasets.captions.CaptionLabels); use CAPTION_LABELS dataset")
        matcher = self.dm.dataset.caption_matcher(names, self.tcfg.SYNONYMS)
        matched = matcher.label(texts).astype(np.int64)
        agree = float((matched == (ship == 1)).mean() * 100) if len(texts) else 100.0
        self.logger.info(f"Caption labels: class names + synonyms ({len(matcher.synonyms)} entries) over {len(names)} "
                         f"classes; agreement with the dataset's labels {agree:.2f}% of entries")
        self.caption_label_agreement = agree
        return texts, matched

    def _build_caption_loader(self):
        ds = self.dm.dataset
        if not hasattr(ds, "captions"):
            raise ValueError(f"DATASET.TRAIN_SOURCE captions: dataset {self.cfg.DATASET.NAME} has no captions()")
        texts, targets = self._caption_targets(ds.captions(int(self.cfg.DATASET.NUM_CAPTIONS)))
        if not texts:
            raise ValueError(f"dataset {self.cfg.DATASET.NAME} returned no training captions")
        self.captions_text = texts
        cfg = self.cfg
        g = torch.Generator().manual_seed(max(int(cfg.SEED), 0) * 7919 + 17)
        self.train_loader_x = DataLoader(_CaptionSet(targets), batch_size=cfg.DATALOADER.TRAIN_X.BATCH_SIZE,
                                         shuffle=True, drop_last=False, num_workers=0, generator=g)
        n_pos = int((targets == 1).sum())
        self.logger.info(f"TaI-DPT trains on {len(texts):,} captions ({n_pos / len(texts):.2f} positive "
                         f"classes per caption) instead of the {len(ds.train_x):,} training images")

    def parse_batch_train(self, batch):
        labels = batch["label"].to(self.device)
        if self.train_source == "captions":
            return self._caption_features(batch["index"]), labels
        return batch["img"].to(self.device), labels

    # --- build ------------------------------------------------------------
    def build_learner(self):
        if not self.clip.has_dense_features:
            raise BackboneError(f"TaIDPT scores image locations with the local prompts and needs dense image "
                                f"features (ViT patch tokens or a ModifiedResNet attention pool); backbone "
                                f"{self.clip.name} has a {type(self.clip.model.visual).__name__} image tower")
        learner = build_coop_learner(self, cls=DualPromptLearner)
        if self.train_source == "captions":
            self._encode_captions()
        if self.prob_fit == "val":
            self.logger.info("Probability map: fitted on the validation split after training (PROB_FIT val)")
        return learner

    @torch.no_grad()
    def _encode_caption_ids(self, ids):
        """(global (B, E), token features (B, L, E), mask (B, L)), L2-normalised, of token ids."""
        with self.clip.autocast():
            g, tok = self.clip.encode_text_embeddings(self.clip.embed_tokens(ids), ids, return_tokens=True)
        eot = self.clip.eot_positions(ids)
        pos = torch.arange(ids.shape[1], device=ids.device)[None, :]
        mask = (ids != 0) if self.tcfg.get("UPSTREAM_EXACT", False) else (pos >= 1) & (pos <= eot[:, None])
        return F.normalize(g.float(), dim=-1), F.normalize(tok.float(), dim=-1), mask

    def _encode_captions(self):
        ids = self.clip.tokenizer(self.captions_text)
        n_trunc = sum(1 for c in self.captions_text if (self.clip.count_tokens(c) or 0) + 2 > ids.shape[1])
        if n_trunc:
            self.logger.info(f"{n_trunc} captions are longer than the text context ({ids.shape[1]}) and were cut")
        self._caption_ids = ids.cpu()
        n, length, e = ids.shape[0], ids.shape[1], self.clip.embed_dim
        self._caption_cache = None
        if n * length * e <= CAPTION_CACHE_FLOATS:
            parts = [self._encode_caption_ids(ids[i:i + 512].to(self.device)) for i in range(0, n, 512)]
            self._caption_cache = tuple(torch.cat(p) for p in zip(*parts))
            self.logger.info(f"Caption features cached: {n:,} x {length} tokens x {e}")

    def _caption_features(self, index):
        index = torch.as_tensor(index).long()
        if self._caption_cache is not None:
            g, tok, mask = (x[index.to(self.device)] for x in self._caption_cache)
        else:
            g, tok, mask = self._encode_caption_ids(self._caption_ids[index].to(self.device))
        return {"global": g, "tokens": tok, "mask": mask}

    # --- features and scores -----------------------------------------------
    def local_text_features(self):
        pl = self.learner
        return F.normalize(encode_prompts(self.clip, pl.local_prompts(), pl.tokenized_prompts), dim=-1)

    def prepare_evaluation(self, cache):
        cache["local"] = self.local_text_features().float()

    def dense_image_features(self, images):
        """(global (B, E), dense features (B, K, E)), L2-normalised (K: patches or grid locations)."""
        if self.tcfg.get("UPSTREAM_EXACT", False) and self.clip.is_attnpool_resnet:
            g, tok = self.clip._resnet_dense(images, positional=False)
        else:
            g, tok = self.clip.encode_image(images, return_tokens=True)
        return F.normalize(g.float(), dim=-1), F.normalize(tok.float(), dim=-1)

    def scores(self, g, tok, mask, temperature, text_g, text_l):
        """Global, local and merged cosine scores ``(B, C)`` (see the module docstring)."""
        cos_g = g @ text_g.t().to(g.dtype)
        cos_l = softmax_pool(tok @ text_l.t().to(tok.dtype), temperature, mask)
        w = float(self.tcfg.GL_MERGE)
        return cos_g, cos_l, w * cos_g + (1.0 - w) * cos_l

    def forward_logits(self, x):
        """``x``: images, or a caption batch ``{"global", "tokens", "mask"}``. Returns ``logits``
        (raw merged score ``LOGIT_SCALE * m``), ``global``/``local``/``merged`` cosines,
        ``image_features`` (the global input feature) and ``text_features`` (global prompts)."""
        if isinstance(x, dict):
            g, tok, mask, temp = x["global"], x["tokens"], x["mask"], float(self.tcfg.SPATIAL_T_TEXT)
        else:
            g, tok = self.dense_image_features(x)
            mask, temp = None, float(self.tcfg.SPATIAL_T_IMAGE)
        text_g, text_l = self._text_for_eval(), self._cached("local", self.local_text_features)
        cos_g, cos_l, merged = self.scores(g, tok, mask, temp, text_g, text_l)
        return {"logits": self.raw_scale * merged, "global": cos_g, "local": cos_l, "merged": merged,
                "image_features": g, "text_features": text_g}

    def compute_task_loss(self, out, logits, labels):
        y = self.as_targets(labels)
        if self.loss_name == "ranking":
            s, margin = self.raw_scale, float(self.tcfg.RANK_MARGIN)
            return ranking_loss(s * out["global"], y, margin) + ranking_loss(s * out["local"], y, margin)
        a, b = self.probability_map()
        return masked_bce(a * out["global"] + b, y) + masked_bce(a * out["local"] + b, y)

    def _train_accuracy(self, logits, labels):
        if not self.multilabel:  # single-label data: top-1 of the merged score
            return float((logits.argmax(1) == labels).float().mean() * 100)
        return super()._train_accuracy(logits, labels)

    def model_inference(self, images):
        with self.clip.autocast():
            out = self.forward_logits(images)
            logits = self.calibration_logits(out["logits"].float())
        return {"logits": logits.float(), "features": out["image_features"].float()}

    @torch.no_grad()
    def collect_outputs(self, loader, split):
        if self.cfg.TEST.CACHE_FEATURES and not getattr(self, "_cache_note", False):
            self.logger.info("TEST.CACHE_FEATURES ignored: TaIDPT needs the patch tokens of every image")
            self._cache_note = True
        return SimpleTrainer.collect_outputs(self, loader, split)

    # --- probability map fitted on the validation split ----------------------
    @torch.no_grad()
    def _merged_cosines(self, loader):
        self.set_model_mode("eval")
        try:
            self._fill_eval_cache()
            ms, ys = [], []
            for batch in loader:
                imgs, labels = self.parse_batch_test(batch)
                with self.clip.autocast():
                    ms.append(self.forward_logits(imgs)["merged"].float().cpu())
                ys.append(self.as_targets(labels).cpu())
        finally:
            self._eval_cache = None
        return torch.cat(ms), torch.cat(ys)

    def fit_probability_map(self):
        """Fit ``(a, b)`` of ``sigmoid(a * m + b)`` by BCE on the validation split (known entries)."""
        m, y = self._merged_cosines(self.val_loader)
        known = y >= 0
        x, t = m.double()[known], (y[known] == 1).double()
        if t.numel() == 0 or t.min() == t.max():
            raise ValueError("PROB_FIT val: the validation split needs positive and negative entries")
        mu, sd = float(x.mean()), float(x.std().clamp_min(1e-6))
        params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)  # on standardised m
        opt = torch.optim.LBFGS([params], lr=1.0, max_iter=200, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-10, tolerance_change=1e-12)
        z = (x - mu) / sd

        def closure():
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(params[0] * z + params[1], t)
            loss.backward()
            return loss

        opt.step(closure)
        a = float(params[0]) / sd
        b = float(params[1]) - a * mu
        nll = float(F.binary_cross_entropy_with_logits(a * x + b, t))
        self._fitted_map = (a, b)
        self._fitted_source = (f"fitted on the validation split ({x.numel():,} image-class pairs, "
                               f"{int(known.any(1).sum()):,} images, BCE {nll:.4f})")
        self.logger.info(f"Probability map p = sigmoid({a:.4f} * m + {b:.4f}): {self._fitted_source}")
        if get_rank() == 0 and self.output_dir:
            info = dict(self.probability_map_info(), split="val", n_pairs=int(x.numel()), bce=nll)
            atomic_write_json(info, os.path.join(self.output_dir, PROB_MAP_FILE), indent=1)
        return a, b

    def before_evaluation(self, split):
        if (self.multilabel and self.prob_fit == "val" and split == self.cfg.TEST.SPLIT and split != "val"
                and getattr(self, "_fitted_map", None) is None):
            if not self.trained_here:
                raise FileNotFoundError(
                    f"TRAINER.TAIDPT.PROB_FIT val: no {PROB_MAP_FILE} was loaded with the model (--model-dir), and "
                    f"this run did not train, so the map would have to be fitted on this run's validation split "
                    f"(e.g. new classes); train with PROB_FIT val first")
            self.fit_probability_map()
        super().before_evaluation(split)

    def load_model(self, directory, epoch=None):
        super().load_model(directory, epoch)
        path = os.path.join(directory, PROB_MAP_FILE)
        if self.prob_fit == "val" and os.path.isfile(path):
            with open(path) as f:
                info = json.load(f)
            self._fitted_map = (float(info["scale"]), float(info["bias"]))
            self._fitted_source = f"{info.get('source', 'fitted')} (read from {path})"
            self.logger.info(f"Probability map p = sigmoid({self._fitted_map[0]:.4f} * m + "
                             f"{self._fitted_map[1]:.4f}) from {path}")

    def results_extra(self):
        out = super().results_extra()
        out["train_source"] = self.train_source
        if self.train_source == "captions":
            out["n_captions"] = len(self.captions_text)
            if hasattr(self, "caption_label_agreement"):
                out["caption_label_agreement"] = self.caption_label_agreement
        return out
