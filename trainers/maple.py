"""MaPLe (Khattak et al., CVPR 2023): multi-modal deep prompts coupled from text to vision.

Text tower: ``N_CTX`` learnable tokens (the first ``N_CTX`` of ``CTX_INIT``; the rest of
CTX_INIT stays fixed text) at layer 0, and a learnable ``(N_CTX, D_text)`` prompt replacing them
before each layer ``1 .. PROMPT_DEPTH-1``. Vision tower: ``N_CTX`` tokens appended to the patch
tokens, each layer's visual prompt the projection of its text prompt by its own
``Linear(D_text, D_vision)`` (any widths). Keys ``TRAINER.MAPLE``: ``N_CTX``, ``CTX_INIT``,
``PREC``, ``PROMPT_DEPTH`` (1 = shallow prompts only). Needs a ViT image tower. The image
encoder is prompted, so ``TEST.CACHE_FEATURES`` does not apply; text features and visual
prompts are computed once per evaluation.
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpt.engine.trainer import TRAINER_REGISTRY
from cpt.trainers.base import ClipPromptTrainer
from cpt.trainers.clip import BackboneError, PromptLearner, encode_prompts


class MaPLePromptLearner(PromptLearner):
    """Deep coupled prompts; parameter names as in MaPLe (``ctx``, ``proj``,
    ``compound_prompts_text``, ``compound_prompt_projections``)."""

    def __init__(self, clip, classnames, n_ctx=2, ctx_init="a photo of a", depth=9, cfg_key="TRAINER.MAPLE"):
        if not clip.is_vit:
            raise BackboneError(f"MaPLe needs a ViT image tower; backbone {clip.name!r} is not one")
        max_depth = min(clip.n_text_layers, clip.n_vision_layers)
        if not 1 <= depth <= max_depth:
            raise ValueError(f"{cfg_key}.PROMPT_DEPTH must be between 1 and {max_depth} (layers of the "
                             f"smaller tower of {clip.name!r}), got {depth}")
        super().__init__(clip, classnames, n_ctx=n_ctx, ctx_init=ctx_init, cfg_key=cfg_key)
        d_t, d_v = clip.text_width, clip.vision_width
        self.depth = depth
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


@TRAINER_REGISTRY.register()
class MaPLe(ClipPromptTrainer):
    cfg_node = "MAPLE"
    frozen_image_encoder = False
    supports_outliers = True

    def build_learner(self):
        t = self.tcfg
        pl = MaPLePromptLearner(self.clip, self.classnames, n_ctx=t.N_CTX, ctx_init=t.CTX_INIT,
                                depth=t.PROMPT_DEPTH)
        self.logger.info(f'MaPLe: context "{pl.prefix_text}", {pl.n_ctx} learnable tokens, depth {pl.depth}')
        return pl

    def _text(self, deep_text):
        pl = self.learner
        return F.normalize(encode_prompts(self.clip, pl(), pl.tokenized_prompts, deep_prompts=deep_text), dim=-1)

    def class_text_features(self):
        _, deep_text, _ = self.learner.deep_prompts()
        return self._text(deep_text)

    def _image(self, images, visual, deep_vis):
        return F.normalize(self.clip.encode_image(images, visual_prompts=visual, deep_visual_prompts=deep_vis),
                           dim=-1)

    def image_features(self, images):
        cache = self._eval_cache
        if cache is not None and "visual" in cache:
            visual, deep_vis = cache["visual"], cache["deep_vis"]
        else:
            visual, _, deep_vis = self.learner.deep_prompts()
        return self._image(images, visual, deep_vis)

    def prepare_evaluation(self, cache):
        visual, _, deep_vis = self.learner.deep_prompts()
        cache["visual"], cache["deep_vis"] = visual, deep_vis

    def forward_logits(self, images):
        visual, deep_text, deep_vis = self.learner.deep_prompts()
        txt = self._text(deep_text)
        imf = self._image(images, visual, deep_vis)
        return {"logits": self.logits_from_features(imf, txt), "image_features": imf, "text_features": txt}

    def outlier_text_features(self, words):
        x, ids = self.learner.prompts_for_names(self.clip, words)
        _, deep_text, _ = self.learner.deep_prompts()
        return F.normalize(self.clip.encode_text_embeddings(x, ids, deep_prompts=deep_text), dim=-1)
