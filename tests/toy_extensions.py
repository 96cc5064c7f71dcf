"""A method, a regularizer and a post-hoc calibrator added from outside the project, as a user's
plugin would add them (tests/test_extending.py loads this file through ``CPT_PLUGINS`` /
``cpt.cli.plugins.load_plugins``; no project file names them).

- ``ToyShift`` (method ``toyshift``): the class text features are the zero-shot ones plus a learned
  per-class shift, ``t_c = normalize(t0_c + s_c)`` with ``s`` initialised at 0, so before training
  it is zero-shot CLIP. Like a built-in method, the class declares its config node and defaults and
  its catalog entry (here: CoOp's world config).
- ``toy_l2`` regularizer: ``WEIGHT * mean(logits ** 2)``, needs only the logits.
- ``toy_scale`` post-hoc calibrator: divides the logits by ``FACTOR``.
- ``ToyColours`` dataset: one folder of images per class under ``<root>/toy_colours/``
  (:func:`write_toy_colours` draws a tiny one); its yaml can live anywhere
  (``DATASETS=/lab/toy_colours.yaml``).
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cpt.calibration.posthoc import PosthocCalibrator, register_posthoc
from cpt.calibration.regularizers import Regularizer, register_regularizer
from cpt.datasets.splits import FolderBenchmark
from cpt.engine.data import DATASET_REGISTRY
from cpt.engine.trainer import TRAINER_REGISTRY
from cpt.trainers.base import ClipPromptTrainer


class ShiftLearner(nn.Module):
    def __init__(self, zs_text):
        super().__init__()
        self.register_buffer("zs", zs_text.detach().float().clone())
        self.shift = nn.Parameter(torch.zeros_like(self.zs))


@TRAINER_REGISTRY.register()
class ToyShift(ClipPromptTrainer):
    cfg_node = "TOYSHIFT"
    cfg_defaults = dict(PREC="fp32")
    catalog_entry = {"name": "toyshift", "config": "world_ep50", "config_dirs": ("CoOp",)}

    def build_learner(self):
        return ShiftLearner(self.zs_text_features)

    def class_text_features(self):
        return F.normalize(self.learner.zs + self.learner.shift, dim=-1)


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


@DATASET_REGISTRY.register()
class ToyColours(FolderBenchmark):
    dataset_dir = "toy_colours"
    LAYOUT = "toy_colours/<class>/<image>.png  (one folder per class)"


TOY_COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (220, 220, 30)}


def write_toy_colours(root, per_class=6, size=32):
    """``root/toy_colours/<colour>/<i>.png``: noisy squares of each colour (CoOp's 50/20/30 split
    of 6 images: 3 train, 1 val, 2 test per class)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, rgb in TOY_COLOURS.items():
        os.makedirs(os.path.join(root, "toy_colours", name), exist_ok=True)
        for i in range(per_class):
            pix = np.clip(np.array(rgb) + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pix).save(os.path.join(root, "toy_colours", name, f"{i}.png"))
