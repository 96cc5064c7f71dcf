"""MaPLe (Khattak et al., CVPR 2023): multi-modal deep prompts coupled from text to vision.

Text tower: ``N_CTX`` learnable tokens (the first ``N_CTX`` of ``CTX_INIT``; the rest stays fixed
text) at layer 0 and a learnable ``(N_CTX, D_text)`` prompt replacing them before each layer
``1 .. PROMPT_DEPTH-1`` (1 = shallow only). Vision tower (a ViT): ``N_CTX`` tokens appended to the
patch tokens, each layer's the projection of its text prompt by its own ``Linear(D_text,
D_vision)``. The image encoder is prompted, so ``TEST.CACHE_FEATURES`` does not apply. Keys
``TRAINER.MAPLE``: ``N_CTX``, ``CTX_INIT``, ``PROMPT_DEPTH``, ``PREC``, ``LOSS``, ``UPSTREAM_HALF_PROMPTS``.

``UPSTREAM_HALF_PROMPTS True``: MaPLe's vendored ``clip/model.py`` (69bce21) casts the shared
visual prompt (line 457) and the deep visual (line 306) and text (line 323) prompts with
``.half()`` even at fp32; this rounds the same three tensors to fp16 and back after expanding them
per class / per image as upstream does (so each row's gradient is rounded too), to reproduce
those numbers. The default keeps them fp32 (upstream without the three casts).
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..engine.trainer import TRAINER_REGISTRY
from .base import ClipPromptTrainer
from .clip import BackboneError, PromptLearner, encode_prompts


class MaPLePromptLearner(PromptLearner):
    """Deep coupled prompts; parameter names as in MaPLe (``ctx``, ``proj``,
    ``compound_prompts_text``, ``compound_prompt_projections``)."""

    def __init__(self, clip, classnames, n_ctx=2, ctx_init="a photo of a", depth=9, cfg_key="TRAINER.MAPLE",
                 upstream_half=False):
        if not clip.is_vit:
            raise BackboneError(f"MaPLe needs a ViT image tower; backbone {clip.name!r} is not one")
        max_depth = min(clip.n_text_layers, clip.n_vision_layers)
        if not 1 <= depth <= max_depth:
            raise ValueError(f"{cfg_key}.PROMPT_DEPTH must be between 1 and {max_depth} (layers of the "
                             f"smaller tower of {clip.name!r}), got {depth}")
        super().__init__(clip, classnames, n_ctx=n_ctx, ctx_init=ctx_init, cfg_key=cfg_key)
        d_t, d_v = clip.text_width, clip.vision_width
        self.depth = depth
        self.upstream_half = bool(upstream_half)
        self.proj = nn.Linear(d_t, d_v)
        self.compound_prompts_text = nn.ParameterList(
            [nn.Parameter(nn.init.normal_(torch.empty(self.n_ctx, d_t), std=0.02)) for _ in range(depth - 1)])
        layer = nn.Linear(d_t, d_v)
        self.compound_prompt_projections = nn.ModuleList([copy.deepcopy(layer) for _ in range(depth - 1)])
        self.to(clip.device)

    def deep_prompts(self):
        """(shared visual prompt ``(n, D_v)``, deep text prompts, deep visual prompts)."""
        visual = self.proj(self.ctx)
        deep_text = list(self.compound_prompts_text)
        deep_vis = [lin(p) for lin, p in zip(self.compound_prompt_projections, deep_text)]
        return visual, deep_text, deep_vis


def _half_rows(x, rows):
    """``x`` ``(n, D)`` expanded to ``(rows, n, D)`` and rounded to fp16 (kept float32), as upstream
    casts after expanding: in the backward pass each row's gradient is rounded before the sum."""
    x = x.unsqueeze(0).expand(rows, -1, -1)
    return x.half().float() if x.dtype == torch.float32 else x


@TRAINER_REGISTRY.register()
class MaPLe(ClipPromptTrainer):
    cfg_node = "MAPLE"
    cfg_defaults = dict(N_CTX=2, CTX_INIT="a photo of a", PREC="fp16", PROMPT_DEPTH=9, LOSS="ce",
                        UPSTREAM_HALF_PROMPTS=False)
    catalog_entry = {"name": "maple", "config": "vit_b16_c2_ep5_batch4_2ctx", "paper": "MaPLe"}
    frozen_image_encoder = False
    supports_outliers = True

    def build_learner(self):
        t = self.tcfg
        pl = MaPLePromptLearner(self.clip, self.classnames, n_ctx=t.N_CTX, ctx_init=t.CTX_INIT,
                                depth=t.PROMPT_DEPTH, upstream_half=t.get("UPSTREAM_HALF_PROMPTS", False))
        self.logger.info(f'MaPLe: context "{pl.prefix_text}", {pl.n_ctx} learnable tokens, depth {pl.depth}'
                         f'{", prompts rounded to fp16 as upstream" if pl.upstream_half else ""}')
        return pl

    def _text(self, deep_text):
        pl = self.learner
        if pl.upstream_half:
            deep_text = [_half_rows(p, pl.tokenized_prompts.shape[0]) for p in deep_text]
        return F.normalize(encode_prompts(self.clip, pl(), pl.tokenized_prompts, deep_prompts=deep_text), dim=-1)

    def class_text_features(self):
        return self._text(self.learner.deep_prompts()[1])

    def _image(self, images, visual, deep_vis):
        if self.learner.upstream_half:
            visual, deep_vis = _half_rows(visual, images.shape[0]), [_half_rows(p, images.shape[0]) for p in deep_vis]
        return F.normalize(self.clip.encode_image(images, visual_prompts=visual, deep_visual_prompts=deep_vis),
                           dim=-1)

    def _visual_prompts(self):
        return self.learner.deep_prompts()[::2]  # (shared visual prompt, deep visual prompts)

    def image_features(self, images):
        return self._image(images, *self.text_head.cached("visual", self._visual_prompts))

    def prepare_evaluation(self, cache):
        cache["visual"] = self._visual_prompts()

    def forward_logits(self, images):
        visual, deep_text, deep_vis = self.learner.deep_prompts()
        txt = self._text(deep_text)
        imf = self._image(images, visual, deep_vis)
        return {"logits": self.logits_from_features(imf, txt), "image_features": imf, "text_features": txt}

    def outlier_text_features(self, words):
        x, ids = self.learner.prompts_for_names(self.clip, words)
        _, deep_text, _ = self.learner.deep_prompts()
        if self.learner.upstream_half:
            deep_text = [_half_rows(p, x.shape[0]) for p in deep_text]
        return F.normalize(self.clip.encode_text_embeddings(x, ids, deep_prompts=deep_text), dim=-1)
