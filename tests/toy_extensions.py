"""A method, a regularizer and a post-hoc calibrator added from outside the project, as a user's
plugin would add them (tests/test_extending.py loads this file through ``CPT_PLUGINS`` /
``cpt.cli.plugins.load_plugins``; no project file names them).

- ``ToyShift`` (method ``toyshift``): the class text features are the zero-shot ones plus a learned
  per-class shift, ``t_c = normalize(t0_c + s_c)`` with ``s`` initialised at 0, so before training
  it is zero-shot CLIP.
- ``toy_l2`` regularizer: ``WEIGHT * mean(logits ** 2)``, needs only the logits.
- ``toy_scale`` post-hoc calibrator: divides the logits by ``FACTOR``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from cpt.cli import catalog
from cpt.calibration.posthoc import PosthocCalibrator, register_posthoc
from cpt.calibration.regularizers import Regularizer, register_regularizer
from cpt.engine.trainer import TRAINER_REGISTRY
from cpt.trainers.base import ClipPromptTrainer
from cpt.trainers.config import add_trainer_node

add_trainer_node("TOYSHIFT", PREC="fp32")


class ShiftLearner(nn.Module):
    def __init__(self, zs_text):
        super().__init__()
        self.register_buffer("zs", zs_text.detach().float().clone())
        self.shift = nn.Parameter(torch.zeros_like(self.zs))


@TRAINER_REGISTRY.register()
class ToyShift(ClipPromptTrainer):
    cfg_node = "TOYSHIFT"

    def build_learner(self):
        return ShiftLearner(self.zs_text_features)

    def class_text_features(self):
        return F.normalize(self.learner.zs + self.learner.shift, dim=-1)


catalog.register_method("toyshift", trainer="ToyShift", config="world_ep50", config_dirs=("CoOp",))


@register_regularizer("toy_l2")
class ToyL2(Regularizer):
    needs = ("logits",)
    defaults = {"weight": 0.25}

    def components(self, ctx):
        return {"toy_l2": self.params["weight"] * (ctx.logits.float() ** 2).mean()}


@register_posthoc("toy_scale")
class ToyScale(PosthocCalibrator):
    needs = ()
    defaults = {"factor": 2.0}
    saved = False

    def apply(self, logits, **inputs):
        return logits / self.params["factor"]
