"""``ClipPromptTrainer``: what every CLIP prompt learner shares (docs/design.md section 11).

A method subclasses it, sets ``cfg_node`` (its ``TRAINER.<NODE>``) and implements
``build_learner`` (the learnable module, registered as ``prompt_learner``), ``class_text_features``
(image-independent methods) and, when needed, ``forward_logits`` / ``image_features`` /
``method_losses``. The base provides frozen CLIP with the trainer's ``PREC``, the zero-shot text
features, ``forward_backward`` (task loss, the method's terms and the ``CALIB.METHOD``
regularizers fed by :meth:`providers`; amp with a gradient scaler), the multi-label
:meth:`calibration_logits`, and evaluation (text features once per evaluation, features for
PIECE, the frozen-feature cache ``TEST.CACHE_FEATURES``, ``CALIB.POSTHOC`` via
:mod:`trainers.posthoc`).
"""
from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..calibration.regularizers import (
    RegContext,
    apply_regularizers,
    build_regularizers,
    check_requirements,
    load_outlier_vocab,
    select_outliers,
)
from ..engine import feature_cache
from ..engine.checkpoint import load_checkpoint, load_learnable_state
from ..engine.optim import build_lr_scheduler, build_optimizer
from ..engine.trainer import TrainerX
from ..engine.utils import count_num_param
from .clip import encode_prompts, load_clip
from .clip import world as _world_clip
from .config import LOSS_CHOICES, PREC_CHOICES
from .posthoc import PosthocStep, save_train_classnames
from .templates import get_template, method_templates, trainer_method

ML_EVALUATOR = "MultiLabelClassification"


def masked_bce(logits, targets):
    """Binary cross-entropy with logits on multi-hot ``targets`` (1 / 0 / -1 unknown), the mean over
    the known entries (``sum_{y != -1} bce(z, y) / #known``; 0 when none): -1 carries no gradient."""
    targets = targets.to(logits.device)
    known = (targets >= 0).to(logits.dtype)
    per = F.binary_cross_entropy_with_logits(logits, (targets == 1).to(logits.dtype), reduction="none")
    return (per * known).sum() / known.sum().clamp_min(1.0)


class ClipPromptTrainer(TrainerX):
    cfg_node = ""                     # TRAINER.<cfg_node> holds PREC (and LOSS)
    frozen_image_encoder = True       # image features depend on frozen CLIP only (cacheable)
    image_independent_text = True     # class text features do not depend on the image
    supports_outliers = False         # can encode arbitrary words with the learned prompt (DOR)
    max_text_rows = 4096              # chunk size for per-image prompts (sequences per pass)
    loss_choices = LOSS_CHOICES       # accepted TRAINER.<NODE>.LOSS values
    onehot_single_label = False       # a multi-label loss also trains on single-label data (one-hot)

    # --- configuration ------------------------------------------------
    @property
    def tcfg(self):
        return self.cfg.TRAINER[self.cfg_node]

    def check_cfg(self, cfg):
        node = cfg.TRAINER.get(self.cfg_node)
        if node is None:
            raise KeyError(f"config has no TRAINER.{self.cfg_node}; call trainers.config.extend_cfg(cfg) "
                           f"before merging yaml files")
        if node.PREC not in PREC_CHOICES:
            raise ValueError(f"TRAINER.{self.cfg_node}.PREC must be one of {PREC_CHOICES}, got {node.PREC!r}")
        if "LOSS" in node and str(node.LOSS).lower() not in self.loss_choices:
            raise ValueError(f"TRAINER.{self.cfg_node}.LOSS must be one of {self.loss_choices}, got {node.LOSS!r}")

    @property
    def loss_name(self):
        """``TRAINER.<NODE>.LOSS`` lower-cased (``ce`` when the node has no LOSS)."""
        return str(self.tcfg.get("LOSS", "ce")).lower()

    @property
    def multilabel_loss(self):
        """True when the task loss takes multi-hot targets (``bce``, TaI-DPT's ``ranking``)."""
        return self.loss_name != "ce"

    def _check_task(self):
        """The loss, the dataset's labels and the evaluator must agree (fails at build)."""
        key = f"TRAINER.{self.cfg_node}.LOSS"
        evaluator = self.cfg.TEST.EVALUATOR
        name = self.cfg.DATASET.NAME
        if self.multilabel and evaluator != ML_EVALUATOR:
            raise ValueError(f"dataset {name} is multi-label; set TEST.EVALUATOR {ML_EVALUATOR} "
                             f"(got {evaluator!r}; the dataset yaml normally sets it)")
        if "LOSS" not in self.tcfg:
            return
        if self.multilabel and not self.multilabel_loss:
            raise ValueError(f"{key} is '{self.loss_name}' (softmax cross-entropy over one label per image), "
                             f"but dataset {name} is multi-label; set {key} bce")
        if self.multilabel_loss and not self.multilabel and not self.onehot_single_label:
            raise ValueError(f"{key} '{self.loss_name}' needs a multi-label dataset (multi-hot labels and "
                             f"TEST.EVALUATOR {ML_EVALUATOR}); {name} is single-label: use {key} ce")

    # --- build --------------------------------------------------------
    def build_model(self):
        cfg = self.cfg
        self.logger.info(f"Loading CLIP (backbone: {cfg.MODEL.BACKBONE.NAME})")
        self.clip = load_clip(cfg, device=self.device, precision=self.tcfg.PREC)
        self.logger.info(f"CLIP: {self.clip.describe()}")
        method = trainer_method(type(self))  # each method's own upstream table
        self.template = get_template(self.dataset_name, method=method)
        self.logger.info(f"Hand-crafted template: {self.template!r} ({method_templates(method)[1]})")
        self.multilabel = bool(getattr(self.dm.dataset, "is_multilabel", False))
        self._zs_text = None
        self.regularizers = self._build_regularizers()
        self._check_task()
        if self.multilabel:  # a PROB_MAP the manifest lacks fails here, not at the first batch
            scale, bias, source = self.configured_probability_map()
            self.logger.info(f"Probability map: sigmoid({scale:g} * cos + {bias:g}), {source}")
        self._init_outliers()

        self.learner = self.build_learner()
        self.model = nn.ModuleDict({"clip": self.clip})
        if self.learner is not None:
            self.learner.to(self.device)
            self.model["prompt_learner"] = self.learner
            if cfg.MODEL.INIT_WEIGHTS:
                ckpt = load_checkpoint(cfg.MODEL.INIT_WEIGHTS)
                load_learnable_state(self.learner, ckpt.get("state_dict", ckpt), cfg.MODEL.INIT_WEIGHTS)
            n_learn = sum(p.numel() for p in self.learner.parameters() if p.requires_grad)
            self.logger.info(f"Learnable parameters: {n_learn:,} (CLIP: {count_num_param(self.clip):,}, frozen)")
            if n_learn:
                optim = build_optimizer(self.learner, cfg.OPTIM)
                sched = build_lr_scheduler(optim, cfg.OPTIM)
                self.register_model("prompt_learner", self.learner, optim, sched)
        self.scaler = torch.amp.GradScaler("cuda") if self.clip.precision == "amp" else None
        self._eval_cache = None
        if cfg.TEST.CACHE_FEATURES and not self.frozen_image_encoder:
            self.logger.info(f"TEST.CACHE_FEATURES ignored: {type(self).__name__} prompts the image encoder")
        self.trained_here = False
        self.posthoc = PosthocStep(self)
        self._eval_split = None

    def build_learner(self):
        """The learnable module (float32 parameters), or None (zero-shot)."""
        raise NotImplementedError

    def class_specific_state(self):
        """``TRAINER.<NODE>.CSC`` when the learner keeps one context per class (``csc``), else None."""
        return f"TRAINER.{self.cfg_node}.CSC" if getattr(self.learner, "csc", False) else None

    def results_extra(self):
        """Extra fields for ``results.json``."""
        n = sum(p.numel() for p in self.learner.parameters()) if self.learner is not None else 0
        out = {"backbone": self.clip.describe(), "learnable_params": n}
        if self.multilabel:
            out["probability_map"] = self.probability_map_info()
        if self.posthoc.active:
            out["posthoc_state"] = self.posthoc.info()
        return out

    # --- multi-label probability map ------------------------------------
    @property
    def raw_scale(self):
        """Factor between a cosine and the trainer's raw logits (CLIP's logit scale)."""
        return float(self.clip.logit_scale)

    def probability_map(self):
        """``(scale, bias)`` of ``p = sigmoid(scale * cos + bias)`` (multi-label datasets), from
        the config (:meth:`configured_probability_map`)."""
        return self.configured_probability_map()[:2]

    def configured_probability_map(self):
        """``(scale, bias, source)`` from ``TRAINER.<NODE>``: ``PROB_MAP`` names a map recorded in
        the backbone checkpoint's manifest (``<PROB_MAP>_probability_map``); otherwise
        ``BCE_SCALE`` / ``BCE_BIAS``, a scale <= 0 meaning :attr:`raw_scale`. Read once."""
        cached = getattr(self, "_configured_map", None)
        if cached is not None:
            return cached
        node = f"TRAINER.{self.cfg_node}"
        name = str(self.tcfg.get("PROB_MAP", "") or "")
        scale, bias = float(self.tcfg.get("BCE_SCALE", 0.0)), float(self.tcfg.get("BCE_BIAS", 0.0))
        if name:
            if scale or bias:
                raise ValueError(f"{node}.PROB_MAP is {name!r} but BCE_SCALE/BCE_BIAS are {scale}/{bias}: "
                                 "set either the manifest's map or the numbers, not both (the other 0 / '')")
            ckpt = self.clip.source.get("file", "")
            scale, bias = _world_clip.manifest_probability_map(ckpt, name)
            source = f"manifest ({node}.PROB_MAP {name!r}: {_world_clip.manifest_path(ckpt)})"
        else:
            zero = f", scale 0 = the raw logit scale {self.raw_scale:g}" if scale <= 0 else ""
            scale = scale if scale > 0 else self.raw_scale
            source = f"config ({node}.BCE_SCALE/BCE_BIAS{zero})"
        self._configured_map = (scale, bias, source)
        return self._configured_map

    map_input = "cosine"  # what the map is applied to (results.json's formula)

    def probability_map_source(self):
        return self.configured_probability_map()[2]

    def probability_map_info(self):
        scale, bias = self.probability_map()
        return {"formula": f"p = sigmoid(scale * {self.map_input} + bias)", "scale": scale, "bias": bias,
                "source": self.probability_map_source()}

    def calibration_logits(self, raw):
        """Multi-label: raw logits (``raw_scale * cos``) -> ``scale * cos + bias`` of
        :meth:`probability_map` (the probability-map contract, ``calibration/multilabel.py``);
        single-label datasets: unchanged."""
        if not self.multilabel:
            return raw
        scale, bias = self.probability_map()
        return raw * (scale / self.raw_scale) + bias

    def as_targets(self, labels):
        """Multi-hot targets ``(N, C)`` (1 / 0 / -1) of a batch: the labels themselves for
        multi-label data, one-hot for single-label data (``onehot_single_label`` trainers)."""
        return labels if labels.dim() == 2 else F.one_hot(labels.long(), self.num_classes).to(labels.dtype)

    @property
    def zs_text_features(self):
        """Zero-shot text features ``(C, E)`` of the classes (hand-crafted template), computed once."""
        if self._zs_text is None:
            self._zs_text = self.clip.zero_shot_text_features(self.classnames, self.template)
        return self._zs_text

    @zs_text_features.setter
    def zs_text_features(self, value):
        self._zs_text = value

    # --- regularizers -------------------------------------------------
    def providers(self):
        """The regularizers' inputs this trainer provides: name -> ``fn(step)``, ``step`` holding the
        batch's ``out`` (of :meth:`forward_logits`), calibration ``logits``, ``labels`` and ``images``.
        A multi-label loss gives ``probs`` / ``targets`` instead of ``labels``; a method adds an input
        by extending this dict. Only the needed ones are computed."""
        zs = lambda s: self.zs_text_features  # noqa: E731
        p = {"logits": lambda s: s.logits, "image_features": lambda s: s.out.get("image_features"),
             "logit_scale": lambda s: self.clip.logit_scale, "zs_text_features": zs,
             "zs_logits": self._zs_logits, "text_similarity": lambda s: zs(s) @ zs(s).t()}
        if self.multilabel_loss:
            p.update(probs=lambda s: torch.sigmoid(s.logits), targets=lambda s: self.as_targets(s.labels))
        else:
            p["labels"] = lambda s: s.labels
        if self.image_independent_text:
            p["text_features"] = lambda s: s.out.get("text_features")
        if self.supports_outliers:
            p["outlier_text_features"] = lambda s: self.outlier_text_features(
                [self.outlier_words[i] for i in self._outliers().tolist()])
            p["outlier_zs_text_features"] = lambda s: self.outlier_zs[self._outliers().to(self.outlier_zs.device)]
        return p

    def regularizer_fields(self):
        """The input names of :meth:`providers`."""
        return set(self.providers())

    @torch.no_grad()
    def _zs_logits(self, step):
        """Zero-shot logits of the batch, under the same probability map as the trained logits."""
        imf = step.out["image_features"] if self.frozen_image_encoder else \
            F.normalize(self.clip.encode_image(step.images), dim=-1)
        cos = imf.float() @ self.zs_text_features.t()
        if self.multilabel:
            scale, bias = self.probability_map()
            return scale * cos + bias
        return self.clip.logit_scale * cos

    def _outliers(self):
        if self._outlier_idx is None:
            self.before_epoch()
        return self._outlier_idx

    def _build_regularizers(self):
        methods = list(self.cfg.CALIB.METHOD)
        if not methods:
            return []
        regs = build_regularizers(methods, self.cfg.CALIB)
        for r in regs:
            need = sorted({"probs", "targets"} & set(r.needs))
            if need and not self.multilabel_loss:
                loss = (f"TRAINER.{self.cfg_node}.LOSS is '{self.loss_name}' (softmax over one label per image)"
                        if "LOSS" in self.tcfg else f"{type(self).__name__} has no training loss")
                raise ValueError(
                    f"calibration regularizer '{r.name}' (CALIB.METHOD) needs multi-label probabilities and "
                    f"targets {need}, but {loss}; use a multi-label dataset with TRAINER.{self.cfg_node}.LOSS bce")
        providers = self.providers()
        check_requirements(regs, providers, type(self).__name__)
        self._reg_inputs = {n: providers[n] for r in regs for n in r.needs}
        self.logger.info(f"Calibration regularizers: {regs}")
        for r in regs:  # a batch size that leaves a regularizer without effect (issue 26)
            warning = r.batch_warning(self.cfg.DATALOADER.TRAIN_X.BATCH_SIZE)
            if warning:
                self.logger.warning(f"Warning: {warning}")
        return regs

    def _init_outliers(self):
        self.dor = next((r for r in self.regularizers if r.name == "dor"), None)
        self.outlier_words, self._outlier_idx = None, None
        if self.dor is None:
            return
        self.outlier_words = load_outlier_vocab(self.dor.params["vocab"] or None, exclude=self.classnames)
        self.outlier_zs = self.clip.zero_shot_text_features(self.outlier_words, self.template)
        self.logger.info(f"DOR: {len(self.outlier_words)} outlier words, {self.dor.params['num_outliers']} per epoch")

    def before_epoch(self):
        super().before_epoch()
        if self.dor is not None:
            n = self.dor.params["num_outliers"]
            g = torch.Generator().manual_seed(max(self.cfg.SEED, 0) * 100003 + self.epoch)
            self._outlier_idx = select_outliers(self.outlier_zs, self.zs_text_features, n, pool=4 * n,
                                                generator=g).cpu()

    # --- features and logits ------------------------------------------
    def class_text_features(self):
        """L2-normalised text features ``(C, E)`` of the learned prompts (image-independent methods);
        by default those of a :class:`~trainers.clip.PromptLearner` learner."""
        pl = self.learner
        return F.normalize(encode_prompts(self.clip, pl(), pl.tokenized_prompts), dim=-1)

    def image_features(self, images):
        """L2-normalised image features ``(B, E)`` (frozen encoder by default)."""
        return F.normalize(self.clip.encode_image(images), dim=-1)

    def logits_from_features(self, image_features, text_features=None):
        """Scaled logits from normalised image features (and class text features if given)."""
        if text_features is None:
            text_features = self._text_for_eval()
        return self.clip.logit_scale * image_features @ text_features.t().to(image_features.dtype)

    def forward_logits(self, images):
        """Training forward: dict with ``logits``, ``image_features`` and (if image-independent)
        ``text_features``; subclasses may add ``method_losses``."""
        imf = self.image_features(images)
        txt = self.class_text_features()
        return {"logits": self.logits_from_features(imf, txt), "image_features": imf, "text_features": txt}

    def method_losses(self, out, labels):
        """Extra loss terms of the method itself (dict name -> scalar); default none."""
        return {}

    def outlier_text_features(self, words):
        """Features of ``words`` under the learned prompt (DOR); methods with a generic context."""
        raise NotImplementedError

    # --- training -----------------------------------------------------
    def task_loss(self, logits, labels):
        """CE on class indices (``LOSS ce``) or :func:`masked_bce` on multi-hot targets (``bce``)."""
        if self.loss_name == "bce":
            return masked_bce(logits, self.as_targets(labels))
        return F.cross_entropy(logits, labels)

    def compute_task_loss(self, out, logits, labels):
        """Task loss of a training forward (``out`` from :meth:`forward_logits`, ``logits`` its
        calibration logits); methods with several score branches override this."""
        return self.task_loss(logits, labels)

    def _train_accuracy(self, logits, labels):
        if labels.dim() == 2:  # multi-label: correct pairs (p >= 0.5 vs label) over known entries
            known = labels >= 0
            ok = ((logits >= 0) == (labels == 1)) & known
            return float(ok.sum() * 100.0 / known.sum().clamp_min(1))
        return float((logits.argmax(1) == labels).float().mean() * 100)

    def forward_backward(self, batch):
        images, labels = self.parse_batch_train(batch)
        with self.clip.autocast():
            out = self.forward_logits(images)
            logits = self.calibration_logits(out["logits"].float())
            task = self.compute_task_loss(out, logits, labels)
            if self.regularizers:
                step = SimpleNamespace(out=out, logits=logits, labels=labels, images=images)
                ctx = RegContext(**{n: fn(step) for n, fn in self._reg_inputs.items()})
                loss, logs = apply_regularizers(self.regularizers, ctx, task)
            else:
                loss, logs = task, {}
            for name, term in self.method_losses(out, labels).items():
                loss = loss + term
                logs[name] = float(term.detach())
            logs["loss"] = float(loss.detach())
        self._backward_and_update(loss)
        logs["acc"] = self._train_accuracy(logits.detach(), labels)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return logs

    def _backward_and_update(self, loss):
        if self.scaler is None:
            self.model_backward_and_update(loss)
            return
        self.model_zero_grad()
        self.detect_anomaly(loss)
        self.scaler.scale(loss).backward()
        optims = [self._optims[n] for n in self.get_model_names() if self._optims[n] is not None]
        for opt in optims:
            self.scaler.unscale_(opt)
        self._sync_grads(None)
        for opt in optims:
            self.scaler.step(opt)
        self.scaler.update()

    # --- evaluation ---------------------------------------------------
    def _cached(self, key, compute):
        """``self._eval_cache[key]`` during an evaluation that computed it, else ``compute()``."""
        if self._eval_cache is not None and key in self._eval_cache:
            return self._eval_cache[key]
        return compute()

    def _text_for_eval(self):
        return self._cached("text", self.class_text_features)

    @torch.no_grad()
    def _fill_eval_cache(self):
        """What does not depend on the test image: the class text features and the method's own."""
        self._eval_cache = {}
        with self.clip.autocast():
            if self.image_independent_text:
                self._eval_cache["text"] = self.class_text_features().float()
            self.prepare_evaluation(self._eval_cache)

    def before_evaluation(self, split):
        """Compute once per evaluation what does not depend on the test image."""
        self._fill_eval_cache()
        self._eval_split = split
        with torch.no_grad(), self.clip.autocast():
            if str(self.cfg.TEST.PROXIMITY_POOL).lower() == "train" and self.dm.dataset.train_x:
                feats, _ = self.split_image_features(self.dm.dataset.train_x, "train")
                self.evaluator.set_proximity_reference(feats)

    # --- post-hoc calibration (CALIB.POSTHOC, trainers/posthoc.py) ------
    def apply_posthoc(self, outputs):
        return self.posthoc.apply(outputs, self._eval_split)

    def before_train(self):
        super().before_train()
        self.trained_here = True  # post-hoc and probability-map fits happen only in a training run
        if self.learner is not None:
            save_train_classnames(self.output_dir, self.classnames)

    def load_model(self, directory, epoch=None):
        super().load_model(directory, epoch)
        if directory:
            self.posthoc.on_load(directory)

    def prepare_evaluation(self, cache):
        """Hook: subclasses store more per-evaluation constants in ``cache``."""

    def after_evaluation(self):
        self._eval_cache = None

    def model_inference(self, images):
        with self.clip.autocast():
            imf = self.image_features(images)
            logits = self.calibration_logits(self.logits_from_features(imf).float())
        return {"logits": logits.float(), "features": imf.float()}

    # --- image-feature cache ------------------------------------------
    def split_image_features(self, data_source, split):
        """L2-normalised image features ``(N, E)`` of ``data_source`` (test transform), in order,
        and whether they came from the cache (frozen encoders with ``TEST.CACHE_FEATURES``)."""
        return feature_cache.split_features(
            self.cfg, self.clip, self.dm.tfm_test, data_source, self.image_features, self.device, split,
            use_cache=bool(self.cfg.TEST.CACHE_FEATURES) and self.frozen_image_encoder)

    @torch.no_grad()
    def collect_outputs(self, loader, split):
        if not (self.cfg.TEST.CACHE_FEATURES and self.frozen_image_encoder):
            return super().collect_outputs(loader, split)
        data_source = loader.dataset.data_source
        feats, _ = self.split_image_features(data_source, split)
        logits = []
        bs = self.cfg.DATALOADER.TEST.BATCH_SIZE
        for i in range(0, feats.shape[0], bs):
            with self.clip.autocast():
                logits.append(self.calibration_logits(self.logits_from_features(feats[i:i + bs]).float()).cpu())
        labels = torch.stack([torch.as_tensor(d.label) for d in data_source])  # class ids or multi-hot rows
        return {"logits": torch.cat(logits), "features": feats.cpu(), "labels": labels,
                "index": torch.arange(len(data_source))}
