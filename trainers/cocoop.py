"""CoCoOp (Zhou et al., CVPR 2022): the context plus an image-conditioned bias.

A meta-net ``Linear(E, E // 16) - ReLU - Linear(E // 16, D)`` maps the normalised frozen image
feature (width ``E``) to a bias added to every context token (width ``D``), so text features are
computed per image (in chunks of ``max_text_rows`` sequences). Keys ``TRAINER.COCOOP``:
``N_CTX``, ``CTX_INIT``, ``PREC``, ``LOSS``. The image encoder is frozen: ``TEST.CACHE_FEATURES`` applies.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..engine.trainer import TRAINER_REGISTRY
from .base import ClipPromptTrainer
from .clip import PromptLearner, encode_prompts
from .learners import context_learner


class CoCoOpPromptLearner(PromptLearner):
    """:class:`PromptLearner` with the meta-net (parameter names as in CoCoOp)."""

    def __init__(self, clip, classnames, **kw):
        super().__init__(clip, classnames, **kw)
        e, d = clip.embed_dim, clip.text_width
        hidden = max(1, e // 16)
        self.meta_net = nn.Sequential(OrderedDict([
            ("linear1", nn.Linear(e, hidden)),
            ("relu", nn.ReLU(inplace=True)),
            ("linear2", nn.Linear(hidden, d)),
        ])).to(clip.device)


@TRAINER_REGISTRY.register()
class CoCoOp(ClipPromptTrainer):
    cfg_node = "COCOOP"
    cfg_defaults = dict(N_CTX=16, CTX_INIT="", PREC="fp16", LOSS="ce")
    catalog_entry = {"name": "cocoop", "config": "vit_b16_c4_ep10_batch1_ctxv1", "ml_config": "vit_b16_bce_ep10"}
    image_independent_text = False

    def build_learner(self):
        return context_learner(self, cls=CoCoOpPromptLearner)

    def logits_from_features(self, image_features, text_features=None):
        """Per-image prompts: ``logits[b, c] = scale * <imf_b, t_{b,c}>``."""
        pl = self.learner
        bias = pl.meta_net(image_features.float())                     # (B, D)
        prompts = pl(ctx_shift=bias)                                    # (B, C, L, D)
        txt = encode_prompts(self.clip, prompts, pl.tokenized_prompts, max_rows=self.max_text_rows)
        txt = F.normalize(txt, dim=-1)                                  # (B, C, E)
        return self.clip.logit_scale * torch.einsum("be,bce->bc", image_features.float(), txt)

    def forward_logits(self, images):
        imf = self.image_features(images)
        return {"logits": self.logits_from_features(imf), "image_features": imf}
