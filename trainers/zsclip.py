"""ZeroshotCLIP: hand-crafted prompts, no training (Dassl name ``ZeroshotCLIP``).

``TRAINER.ZSCLIP.TEMPLATE`` overrides the dataset's template (the default table of ``trainers/templates.py``);
``TRAINER.ZSCLIP.ENSEMBLE True`` averages the normalised features of CLIP's ensemble templates
(``ZeroshotCLIP2`` is the same trainer with the ensemble always on). ``OPTIM.MAX_EPOCH`` is
ignored: ``train()`` only evaluates.
"""
from ..engine.trainer import TRAINER_REGISTRY
from .base import ClipPromptTrainer
from .templates import get_ensemble_templates, get_template


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(ClipPromptTrainer):
    cfg_node = "ZSCLIP"
    cfg_defaults = dict(TEMPLATE="", ENSEMBLE=False, PREC="fp16")
    catalog_entry = {"name": "zsclip", "config": "vit_b16", "ml_config": "vit_b16", "config_dirs": ("CoOp",),
                     "eval_only": True, "paper": "ZeroShot"}
    ensemble = None  # None: read TRAINER.ZSCLIP.ENSEMBLE

    def build_learner(self):
        override = self.tcfg.TEMPLATE
        use_ensemble = self.tcfg.ENSEMBLE if self.ensemble is None else self.ensemble
        self.templates = templates = (get_ensemble_templates(self.dataset_name, override) if use_ensemble
                                      else [get_template(self.dataset_name, override)])
        self.logger.info(f"Zero-shot templates: {templates}")
        self.text_features = self.clip.zero_shot_text_features(self.classnames, templates)
        if len(templates) == 1:
            self.zs_text_features = self.text_features
        self.max_epoch = 0
        return None

    def class_text_features(self):
        return self.text_features

    def train(self, start_epoch=None, max_epoch=None):
        """No training: evaluates (unless TEST.NO_TEST)."""
        super().train(0, 0)

    def forward_backward(self, batch):
        raise RuntimeError("ZeroshotCLIP has nothing to train; run it with --eval-only or MAX_EPOCH 0")


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """ZeroshotCLIP with the template ensemble (as in CoOp's repository)."""

    ensemble = True
