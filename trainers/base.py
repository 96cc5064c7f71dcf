"""``ClipPromptTrainer``: the training template of every CLIP prompt learner (docs/design.md 4, 11).

A method subclasses it with its declarations (data the config, the templates and the method catalog
read; capabilities) and the hooks it needs ("Hook" below; ``build_learner`` always). The template
fixes the order of things; each job is a part's: ``text_head`` (trainers/text.py), ``prob_map``
(probmap.py), ``inputs`` (inputs.py: CALIB.METHOD, DOR), ``posthoc``, task.py, learners.py, features.py.
"""
import torch
import torch.nn as nn

from ..engine.trainer import TrainerX
from . import features, learners, task
from .clip import encode_prompts, load_clip
from .config import LOSS_CHOICES
from .inputs import RegularizerInputs, default_providers
from .posthoc import PosthocStep
from .probmap import ProbabilityMap
from .templates import DEFAULT_TABLE, get_template
from .text import TextHead


class ClipPromptTrainer(TrainerX):
    # --- declarations (docs/design.md section 11) -----------------------
    cfg_node = ""                     # TRAINER.<cfg_node> holds PREC (and LOSS)
    cfg_defaults = dict(PREC="fp16", **ProbabilityMap.keys)  # that node's keys (merged over the bases)
    templates = DEFAULT_TABLE         # (dataset -> hand-crafted template, its source)
    catalog_entry = None              # the method catalog's entry (cli/catalog.py): a dict literal
    # --- capabilities -----------------------------------------------------
    frozen_image_encoder = True       # image features depend on frozen CLIP only (cacheable)
    image_independent_text = True     # class text features do not depend on the image
    supports_outliers = False         # can encode arbitrary words with the learned prompt (DOR)
    max_text_rows = 4096              # chunk size for per-image prompts (sequences per pass)
    loss_choices = LOSS_CHOICES       # accepted TRAINER.<NODE>.LOSS values
    onehot_single_label = False       # a multi-label loss also trains on single-label data (one-hot)
    probability_map_class = ProbabilityMap

    tcfg = property(lambda self: self.cfg.TRAINER[self.cfg_node])
    loss_name = property(lambda self: str(self.tcfg.get("LOSS", "ce")).lower(),
                         doc="``TRAINER.<NODE>.LOSS`` lower-cased (``ce`` when the node has no LOSS).")
    multilabel_loss = property(lambda self: self.loss_name != "ce",
                               doc="True when the task loss takes multi-hot targets (``bce``, ``ranking``).")
    check_cfg = task.check_node  # TRAINER.<NODE>, its PREC and LOSS (before anything is built)

    # --- build --------------------------------------------------------
    def build_model(self):
        cfg = self.cfg
        self.logger.info(f"Loading CLIP (backbone: {cfg.MODEL.BACKBONE.NAME})")
        self.clip = load_clip(cfg, device=self.device, precision=self.tcfg.PREC)
        self.logger.info(f"CLIP: {self.clip.describe()}")
        self.template = get_template(self.dataset_name, table=self.templates[0])  # the method's own table
        self.logger.info(f"Hand-crafted template: {self.template!r} ({self.templates[1]})")
        self.multilabel = bool(getattr(self.dm.dataset, "is_multilabel", False))
        self.text_head, self.prob_map = TextHead(self), self.probability_map_class(self)
        self.inputs = RegularizerInputs(self)
        self.regularizers = self.inputs.regularizers
        task.check_task(self)
        if self.multilabel:  # a PROB_MAP the manifest lacks fails here, not at the first batch
            scale, bias, source = self.prob_map.configured()
            self.logger.info(f"Probability map: sigmoid({scale:g} * cos + {bias:g}), {source}")
        self.inputs.start_outliers()
        self.learner = self.build_learner()
        self.model = nn.ModuleDict({"clip": self.clip})
        if self.learner is not None:
            learners.register(self, self.learner)
        self.scaler = torch.amp.GradScaler("cuda") if self.clip.precision == "amp" else None
        if cfg.TEST.CACHE_FEATURES and self.uncached_reason():
            self.logger.info(f"TEST.CACHE_FEATURES ignored: {type(self).__name__} {self.uncached_reason()}")
        self.trained_here = False
        self.posthoc = PosthocStep(self)
        self._eval_split = None

    def build_learner(self):
        """Hook: the learnable module (float32 parameters), or None (zero-shot)."""
        raise NotImplementedError

    def class_specific_state(self):
        """``TRAINER.<NODE>.CSC`` when the learner keeps one context per class (``csc``), else None."""
        return f"TRAINER.{self.cfg_node}.CSC" if getattr(self.learner, "csc", False) else None

    def results_extra(self):
        """Extra fields for ``results.json`` (the parts' among them)."""
        n = sum(p.numel() for p in self.learner.parameters()) if self.learner is not None else 0
        return {"backbone": self.clip.describe(), "learnable_params": n, **self.prob_map.results(),
                **self.posthoc.results()}

    # --- parts --------------------------------------------------------
    raw_scale = property(lambda self: float(self.clip.logit_scale))  # raw logits / cosine (CLIP's logit scale)

    def probability_map(self):
        """``(scale, bias)`` of ``p = sigmoid(scale * cos + bias)`` (multi-label datasets)."""
        return self.prob_map.scale_bias()

    zs_text_features = property(lambda self: self.text_head.zero_shot(),  # (C, E), the hand-crafted template's
                                lambda self, value: setattr(self.text_head, "zs", value))
    outlier_zs = property(lambda self: self.inputs.sampler.zs if self.inputs.sampler else None)

    def providers(self):
        """Hook: the regularizers' inputs this trainer provides (``trainers/inputs.py``)."""
        return default_providers(self)

    def regularizer_fields(self):
        return set(self.providers())

    # --- hooks: features and logits ---------------------------------------
    def class_text_features(self):
        """Hook: L2-normalised text features ``(C, E)`` of the learned prompts (a PromptLearner's here)."""
        pl = self.learner
        return torch.nn.functional.normalize(encode_prompts(self.clip, pl(), pl.tokenized_prompts), dim=-1)

    def image_features(self, images):
        """Hook: L2-normalised image features ``(B, E)`` (the frozen encoder's here)."""
        return torch.nn.functional.normalize(self.clip.encode_image(images), dim=-1)

    def logits_from_features(self, image_features, text_features=None):
        """Hook: raw logits from normalised image features (and class text features if given)."""
        if text_features is None:
            text_features = self.text_head.classes()
        return self.clip.logit_scale * image_features @ text_features.t().to(image_features.dtype)

    def forward_logits(self, images):
        """Hook: the training forward, ``logits``, ``image_features`` (and ``text_features``)."""
        imf = self.image_features(images)
        txt = self.class_text_features()
        return {"logits": self.logits_from_features(imf, txt), "image_features": imf, "text_features": txt}

    def method_losses(self, out, labels):
        """Hook: extra loss terms of the method itself (dict name -> scalar)."""
        return {}

    def outlier_text_features(self, words):
        """Hook: features of ``words`` under the learned prompt (DOR); methods with a generic context."""
        raise NotImplementedError

    def uncached_reason(self):
        """Hook: why evaluation cannot read image features from the frozen-feature cache ('' if it can)."""
        return "" if self.frozen_image_encoder else "prompts the image encoder"

    # --- training -----------------------------------------------------
    def compute_task_loss(self, out, logits, labels):
        """Hook: the task loss of a training forward (``logits``: its calibration logits)."""
        return task.loss(self, logits, labels)

    train_accuracy = staticmethod(task.train_accuracy)  # hook: percent, of a training batch

    def forward_backward(self, batch):
        images, labels = self.parse_batch_train(batch)
        with self.clip.autocast():
            out = self.forward_logits(images)
            logits = self.prob_map.logits(out["logits"].float())
            loss, logs = self.inputs.apply(self.compute_task_loss(out, logits, labels), out, logits, labels, images)
            for name, term in self.method_losses(out, labels).items():
                loss = loss + term
                logs[name] = float(term.detach())
            logs["loss"] = float(loss.detach())
        self._backward_and_update(loss)
        logs["acc"] = self.train_accuracy(logits.detach(), labels)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return logs

    def _backward_and_update(self, loss):
        return self.model_backward_and_update(loss) if self.scaler is None else learners.scaled_update(self, loss)

    # --- evaluation ---------------------------------------------------
    def before_evaluation(self, split):
        self.text_head.fill()
        self._eval_split = split
        features.proximity_reference(self)

    def prepare_evaluation(self, cache):
        """Hook: store more per-evaluation constants in ``cache`` (``text_head.cached(key, ...)``)."""

    def after_evaluation(self):
        self.text_head.cache = None

    def model_inference(self, images):
        with self.clip.autocast():
            imf = self.image_features(images)
            logits = self.prob_map.logits(self.logits_from_features(imf).float())
        return {"logits": logits.float(), "features": imf.float()}

    def collect_outputs(self, loader, split):
        if self.cfg.TEST.CACHE_FEATURES and not self.uncached_reason():
            return features.cached_outputs(self, loader, split)
        return super().collect_outputs(loader, split)

    def apply_posthoc(self, outputs):
        return self.posthoc.apply(outputs, self._eval_split)

    def before_train(self):
        super().before_train()
        self.trained_here = True  # post-hoc and probability-map fits happen only in a training run
        self.posthoc.before_train()

    def load_model(self, directory, epoch=None):
        super().load_model(directory, epoch)
        if directory:
            self.posthoc.on_load(directory)
