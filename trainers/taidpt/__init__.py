"""TaI-DPT (Guo et al., CVPR 2023, "Texts as Images in Prompt Tuning for Multi-Label Image
Recognition"): double-grained prompts trained on captions as if they were images. README.md
("TaI-DPT") describes the caption labels, the caption corpus and the configs; keys and defaults:
:class:`TaIDPT` (``TRAINER.TAIDPT``) and the caption datasets' ``DATASET.TRAIN_SOURCE`` /
``DATASET.NUM_CAPTIONS`` (``datasets/captions.py``). Parts: :mod:`.scores` (learner, pooling,
ranking loss), :mod:`.captions` (the caption training source), :mod:`.probmap` (the fitted map).

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
the class names and the dataset's synonym file (``SYNONYMS`` overrides it; the dataset's
``caption_matcher``), ``dataset`` takes the dataset's labels (cut to the trained columns). Images
(``TRAIN_SOURCE images``, and always at evaluation): ``g`` is CLIP's image feature, ``f_k`` a
ViT's patch tokens (after ``ln_post`` and the projection) or a ModifiedResNet's attention-pool
value path at every location (``ClipBackbone.resnet_dense``), ``T = SPATIAL_T_IMAGE``.
``UPSTREAM_EXACT True`` does what upstream's ``Caption_distill_double.py`` (1333eca) does: the
caption tokens pooled are those of id != 0 (l. 347: the start token too), and a ModifiedResNet's
attention pool and dense values get no positional embedding (l. 306 ``if_pos=False``, l. 300).

Raw scores are ``LOGIT_SCALE * cos``. ``LOSS ranking`` (published, on each branch):
:func:`~.scores.ranking_loss` on the global and on the local raw scores; ``bce``:
:func:`trainers.task.masked_bce` on each branch's calibration logits. The task loss never uses the
merged score; CCR and the evaluator do, through ``p = sigmoid(a * m + b)`` (:mod:`.probmap`: the
config's map, or with ``PROB_FIT val`` the one fitted on the validation split; CCR sees the
config's during training). On a single-label dataset the targets are one-hot and
``Classification`` gets ``LOGIT_SCALE * m``. The feature cache (``TEST.CACHE_FEATURES``) is not
used: evaluation needs the patch tokens.
"""
import torch.nn.functional as F

from ...engine.trainer import TRAINER_REGISTRY
from ..base import ClipPromptTrainer
from ..clip import BackboneError, encode_prompts
from ..learners import context_learner
from ..task import as_targets, masked_bce, train_accuracy
from . import captions
from .probmap import PROB_MAP_FILE, FittedProbabilityMap
from .scores import DualPromptLearner, ranking_loss, softmax_pool


@TRAINER_REGISTRY.register()
class TaIDPT(ClipPromptTrainer):
    cfg_node = "TAIDPT"
    cfg_defaults = dict(N_CTX=16, CSC=False, CTX_INIT="", PREC="fp16", CLASS_TOKEN_POSITION="end",
                        LOSS="ranking", RANK_MARGIN=1.0, LOGIT_SCALE=4.0, SPATIAL_T_TEXT=50.0,
                        SPATIAL_T_IMAGE=40.0, GL_MERGE=0.5, CAPTION_LABELS="match", SYNONYMS="",
                        PROB_FIT="config", UPSTREAM_EXACT=False)
    templates = ({}, "TaI-DPT 1333eca (no table; default template)")
    catalog_entry = {"name": "taidpt", "config": "vit_b16", "ml_config": "vit_b16", "multilabel": True}
    loss_choices = ("ranking", "bce")
    onehot_single_label = True
    probability_map_class = FittedProbabilityMap

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

    def uncached_reason(self):
        return "needs the patch tokens of every image"

    # --- data -----------------------------------------------------------
    def build_data_loader(self):
        super().build_data_loader()
        self.train_source = str(self.cfg.DATASET.TRAIN_SOURCE).lower()
        self.captions_text = None
        if self.train_source == "captions":
            self.captions_text, self.train_loader_x = captions.caption_loader(self)
        t = self.cfg.TEST
        if t.FINAL_MODEL == "best_val" and not t.NO_TEST and self.val_loader is None:
            raise ValueError(f"TEST.FINAL_MODEL best_val needs a validation split, and {self.cfg.DATASET.NAME} "
                             f"has none: TaI-DPT never selects a model on the test set (use last_step)")
        if self.prob_fit == "val" and self.val_loader is None:
            raise ValueError(f"TRAINER.TAIDPT.PROB_FIT val fits the probability map on the validation split, "
                             f"and {self.cfg.DATASET.NAME} has none; use PROB_FIT config")

    def parse_batch_train(self, batch):
        labels = batch["label"].to(self.device)
        if self.train_source == "captions":
            return self.caption_features(batch["index"]), labels
        return batch["img"].to(self.device), labels

    # --- build ------------------------------------------------------------
    def build_learner(self):
        if not self.clip.has_dense_features:
            raise BackboneError(f"TaIDPT scores image locations with the local prompts and needs dense image "
                                f"features (ViT patch tokens or a ModifiedResNet attention pool); backbone "
                                f"{self.clip.name} has a {type(self.clip.model.visual).__name__} image tower")
        learner = context_learner(self, cls=DualPromptLearner)
        if self.train_source == "captions":
            self._encode_captions()
        if self.prob_fit == "val":
            self.logger.info("Probability map: fitted on the validation split after training (PROB_FIT val)")
        return learner

    def _encode_captions(self):
        self.caption_features = captions.CaptionFeatures(self, self.captions_text)

    # --- features and scores -----------------------------------------------
    def local_text_features(self):
        pl = self.learner
        return F.normalize(encode_prompts(self.clip, pl.local_prompts(), pl.tokenized_prompts), dim=-1)

    def prepare_evaluation(self, cache):
        cache["local"] = self.local_text_features().float()

    def dense_image_features(self, images):
        """(global (B, E), dense features (B, K, E)), L2-normalised (K: patches or grid locations)."""
        if self.tcfg.get("UPSTREAM_EXACT", False) and self.clip.is_attnpool_resnet:
            g, tok = self.clip.resnet_dense(images, positional=False)
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
        text_g, text_l = self.text_head.classes(), self.text_head.cached("local", self.local_text_features)
        cos_g, cos_l, merged = self.scores(g, tok, mask, temp, text_g, text_l)
        return {"logits": self.raw_scale * merged, "global": cos_g, "local": cos_l, "merged": merged,
                "image_features": g, "text_features": text_g}

    def compute_task_loss(self, out, logits, labels):
        y = as_targets(labels, self.num_classes)
        if self.loss_name == "ranking":
            s, margin = self.raw_scale, float(self.tcfg.RANK_MARGIN)
            return ranking_loss(s * out["global"], y, margin) + ranking_loss(s * out["local"], y, margin)
        a, b = self.probability_map()
        return masked_bce(a * out["global"] + b, y) + masked_bce(a * out["local"] + b, y)

    def train_accuracy(self, logits, labels):
        if not self.multilabel:  # single-label data: top-1 of the merged score
            return float((logits.argmax(1) == labels).float().mean() * 100)
        return train_accuracy(logits, labels)

    def model_inference(self, images):
        with self.clip.autocast():
            out = self.forward_logits(images)
            logits = self.prob_map.logits(out["logits"].float())
        return {"logits": logits.float(), "features": out["image_features"].float()}

    # --- probability map fitted on the validation split (PROB_FIT val) -------
    def before_evaluation(self, split):
        if (self.multilabel and self.prob_fit == "val" and split == self.cfg.TEST.SPLIT and split != "val"
                and self.prob_map.fitted is None):
            if not self.trained_here:
                raise FileNotFoundError(
                    f"TRAINER.TAIDPT.PROB_FIT val: no {PROB_MAP_FILE} was loaded with the model (--model-dir), and "
                    f"this run did not train, so the map would have to be fitted on this run's validation split "
                    f"(e.g. new classes); train with PROB_FIT val first")
            self.prob_map.fit()
        super().before_evaluation(split)

    def load_model(self, directory, epoch=None):
        super().load_model(directory, epoch)
        if self.prob_fit == "val":
            self.prob_map.load(directory)

    def results_extra(self):
        out = super().results_extra()
        out["train_source"] = self.train_source
        if self.train_source == "captions":
            out["n_captions"] = len(self.captions_text)
            if hasattr(self, "caption_label_agreement"):
                out["caption_label_agreement"] = self.caption_label_agreement
        return out
