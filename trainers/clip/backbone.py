"""The frozen CLIP backbone: the shared text path (with deep prompts) and image encoding
(docs/design.md section 3).

Short text path (``MODEL.BACKBONE.SHORT_TEXT``, on by default): under a causal mask the pooled
feature at position ``p`` depends on positions ``0..p`` only, so a batch runs on its first
``max(pooled position) + 1`` positions with the same result. Used only where that is exact
(:attr:`ClipBackbone.short_text_exact`): the text tower's mask hides every position above the
diagonal and the pooling reads one position per row (``argmax``/``eos``/``first``).

Precision: ``fp32``, ``fp16``, ``bf16`` (frozen weights cast, LayerNorms stay fp32) or ``amp``
(fp32 weights, :meth:`ClipBackbone.autocast` runs fp16 autocast); the CPU always runs fp32.
"""
import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import image
from .image import replace_tokens, run_block

PRECISIONS = ("fp32", "fp16", "bf16", "amp")


class BackboneError(ValueError):
    """A backbone name, tag or file that cannot be resolved, or a tower a method cannot use."""


def effective_precision(precision, device):
    """The precision actually used: ``precision`` on CUDA, always ``fp32`` elsewhere."""
    precision = str(precision).lower()
    if precision not in PRECISIONS:
        raise ValueError(f"precision (TRAINER.<NAME>.PREC) must be one of {PRECISIONS}, got {precision!r}")
    return precision if torch.device(device).type == "cuda" else "fp32"


class _TextParts:
    """Live view of the text tower's pieces (attributes of ``CLIP`` or of ``CustomTextCLIP.text``)."""

    def __init__(self, owner):
        self.owner = owner

    token_embedding = property(lambda self: self.owner.token_embedding)
    positional_embedding = property(lambda self: self.owner.positional_embedding)
    transformer = property(lambda self: self.owner.transformer)
    ln_final = property(lambda self: self.owner.ln_final)
    text_projection = property(lambda self: self.owner.text_projection)
    attn_mask = property(lambda self: getattr(self.owner, "attn_mask", None))
    pool_type = property(lambda self: getattr(self.owner, "text_pool_type", getattr(self.owner, "pool_type", "argmax")))
    eos_id = property(lambda self: getattr(self.owner, "text_eos_id", getattr(self.owner, "eos_id", None)))
    cls_emb = property(lambda self: getattr(self.owner, "cls_emb", None))


def _masks_future(mask):
    """True when ``mask`` (L, L) hides every position ``j > i`` from ``i`` (a causal mask)."""
    if mask is None or mask.dim() != 2 or mask.shape[0] != mask.shape[1]:
        return False
    upper = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    if mask.dtype == torch.bool:  # nn.MultiheadAttention convention: True = not allowed
        return bool(mask[upper].all())
    return bool(torch.isneginf(mask[upper]).all())


def _text_parts(model):
    if hasattr(model, "token_embedding") and hasattr(model, "transformer"):
        return _TextParts(model)
    text = getattr(model, "text", None)
    if text is not None and hasattr(text, "token_embedding") and hasattr(text, "transformer"):
        return _TextParts(text)
    raise BackboneError(
        f"{type(model).__name__}: the text tower is not a CLIP-style transformer (e.g. a Hugging Face "
        f"text model); prompt learning needs token embeddings, positional embedding, transformer, "
        f"ln_final and text_projection")


class ClipBackbone(nn.Module):
    """A frozen open_clip CLIP (``model``) with the shared text path and image encoding.

    ``precision`` is the effective one, ``dtype`` the transformer weights', ``vision_width`` None
    unless a ViT, ``source`` (dict: name, tag, file) goes into cache keys.
    """

    def __init__(self, model, tokenizer, precision="fp32", name="", arch="", source=None, short_text=True):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.precision = precision
        self.name, self.arch = name, arch
        self.source = dict(source or {})
        self._text = _text_parts(model)
        if self._text.cls_emb is not None:
            raise BackboneError(f"{arch}: text towers with an appended CLS embedding (CoCa) are not supported")
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()
        t = self._text
        self.text_width = t.token_embedding.weight.shape[1]
        self.context_length = t.positional_embedding.shape[0]
        self.n_text_layers = len(t.transformer.resblocks)
        self.short_text = bool(short_text)
        self.short_text_exact = _masks_future(t.attn_mask) and t.pool_type in ("argmax", "eos", "first")
        v = model.visual
        self.is_vit = all(hasattr(v, a) for a in ("conv1", "class_embedding", "positional_embedding",
                                                  "ln_pre", "transformer", "ln_post"))
        self.vision_width = v.conv1.out_channels if self.is_vit else None
        self.n_vision_layers = len(v.transformer.resblocks) if self.is_vit else 0
        pool = getattr(v, "attnpool", None)
        self.is_attnpool_resnet = (not self.is_vit and hasattr(v, "stem") and pool is not None
                                   and all(hasattr(pool, a) for a in ("positional_embedding", "v_proj", "c_proj")))
        # dense image features: ViT patch tokens or a ModifiedResNet's attention-pool values
        self.has_dense_features = self.is_vit or self.is_attnpool_resnet
        proj = t.text_projection
        self.embed_dim = getattr(v, "output_dim", None) or (
            proj.out_features if isinstance(proj, nn.Linear) else
            proj.shape[1] if proj is not None else self.text_width)

    # Frozen: train() never switches the wrapped model out of eval mode.
    def train(self, mode=True):
        super().train(False)
        return self

    @property
    def dtype(self):
        blk = self._text.transformer.resblocks[0]
        return blk.get_weight_dtype() if hasattr(blk, "get_weight_dtype") else blk.mlp.c_fc.weight.dtype

    @property
    def device(self):
        return self._text.token_embedding.weight.device

    @property
    def logit_scale(self):
        """``exp(logit_scale)`` as a float32 scalar tensor (no grad)."""
        return self.model.logit_scale.detach().exp().float().reshape(())

    def autocast(self):
        """fp16 autocast for ``amp`` on CUDA; a no-op otherwise."""
        if self.precision == "amp" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    # --- text ---------------------------------------------------------
    def count_tokens(self, text):
        """Number of BPE tokens of ``text`` without start/end tokens (None if unknown)."""
        enc = getattr(self.tokenizer, "encode", None)
        if enc is None:
            return None
        clean = getattr(self.tokenizer, "clean_fn", None)
        return len(enc(clean(text) if clean else text))

    def tokenize(self, texts, what="prompt"):
        """LongTensor ``(N, context_length)`` on the backbone's device; too-long texts raise."""
        if isinstance(texts, str):
            texts = [texts]
        for t in texts:
            n = self.count_tokens(t)
            if n is not None and n + 2 > self.context_length:
                raise ValueError(
                    f"{what} {t!r} has {n} tokens plus start/end, more than the text context length "
                    f"{self.context_length} of backbone {self.name!r}")
        return self.tokenizer(list(texts)).to(self.device)

    def embed_tokens(self, token_ids):
        """Token embeddings (in the transformer dtype), no grad through the frozen table."""
        with torch.no_grad():
            return self._text.token_embedding(token_ids.to(self.device)).to(self.dtype)

    def eot_positions(self, token_ids):
        """Index of the pooled token per row (argmax for CLIP's BPE, where EOT has the largest id)."""
        t = self._text
        if t.pool_type == "argmax":
            return token_ids.argmax(dim=-1)
        if t.pool_type == "eos":
            return (token_ids == t.eos_id).int().argmax(dim=-1)
        if t.pool_type == "first":
            return torch.zeros(token_ids.shape[0], dtype=torch.long, device=token_ids.device)
        if t.pool_type == "last":
            return torch.full((token_ids.shape[0],), token_ids.shape[1] - 1, dtype=torch.long,
                              device=token_ids.device)
        raise BackboneError(f"text pool type {t.pool_type!r} is not supported")

    def text_keep_length(self, token_ids, min_length=0):
        """Positions the text transformer runs for ``token_ids`` ``(..., L)``: ``L``, or with the short
        path (requested and exact) ``max(pooled position) + 1``, at least ``min_length``."""
        n_tok = token_ids.shape[-1]
        if not (self.short_text and self.short_text_exact) or token_ids.numel() == 0:
            return n_tok
        pos = self.eot_positions(token_ids.reshape(-1, n_tok))
        return min(n_tok, max(int(pos.max()) + 1, int(min_length)))

    def encode_text_embeddings(self, x, token_ids, deep_prompts=None, ctx_slice=None, return_tokens=False):
        """Text features ``(N, embed_dim)`` (float32, not normalised) of prompt embeddings.

        ``x``: ``(N, L, text_width)`` token embeddings with any learnable context spliced in;
        ``token_ids``: ``(N, L)`` ids of the same layout (for the EOT position). ``deep_prompts``:
        ``(n, text_width)`` (or ``(N, n, text_width)``) tensors, entry ``j`` replacing the tokens
        ``ctx_slice`` (default ``1 : 1 + n``) at the input of layer ``j + 1``. ``return_tokens``
        also returns every position's feature ``(N, L, embed_dim)`` (final LayerNorm and projection
        as for the EOT token; TaI-DPT's token features); positions the short path skips are 0.
        """
        t = self._text
        dtype = self.dtype
        n_full = x.shape[1]
        deep_prompts = list(deep_prompts or [])
        if len(deep_prompts) >= self.n_text_layers:
            raise ValueError(f"{len(deep_prompts)} deep text prompts for a {self.n_text_layers}-layer text tower")
        if deep_prompts and ctx_slice is None:
            ctx_slice = (1, 1 + deep_prompts[0].shape[-2])
        token_ids = token_ids.to(x.device)
        n_tok = self.text_keep_length(token_ids, ctx_slice[1] if deep_prompts else 0)
        pos = self.eot_positions(token_ids)
        x = x[:, :n_tok].to(dtype) + t.positional_embedding[:n_tok].to(dtype)
        mask = None if t.attn_mask is None else t.attn_mask[:n_tok, :n_tok]
        batch_first = getattr(t.transformer, "batch_first", False)
        for i, block in enumerate(t.transformer.resblocks):
            if 1 <= i <= len(deep_prompts):
                x = replace_tokens(x, deep_prompts[i - 1], *ctx_slice)
            x = run_block(block, x, mask, batch_first)
        rows = torch.arange(x.shape[0], device=x.device)
        if not return_tokens:
            return self._project_text(x[rows, pos])
        tokens = self._project_text(x)
        if n_tok < n_full:
            tokens = F.pad(tokens, (0, 0, 0, n_full - n_tok))
        return tokens[rows, pos], tokens

    def _project_text(self, x):
        """Final LayerNorm and the text projection of transformer outputs ``(..., width)``, float32."""
        x = self._text.ln_final(x)
        proj = self._text.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, nn.Linear) else x @ proj.to(x.dtype)
        return x.float()

    def encode_text(self, texts_or_ids, normalize=False):
        """Features of plain text (strings or token ids) through the same shared path."""
        ids = texts_or_ids if torch.is_tensor(texts_or_ids) else self.tokenize(texts_or_ids)
        feats = self.encode_text_embeddings(self.embed_tokens(ids), ids)
        return F.normalize(feats, dim=-1) if normalize else feats

    @torch.no_grad()
    def zero_shot_text_features(self, classnames, template="a photo of a {}.", batch_size=256):
        """L2-normalised features ``(C, embed_dim)`` of ``template.format(name)`` for every class.

        ``template`` may be a list of templates: features are normalised per template, averaged
        and normalised again (CLIP's prompt ensemble).
        """
        templates = [template] if isinstance(template, str) else list(template)
        names = [c.replace("_", " ") for c in classnames]
        acc = None
        for tpl in templates:
            feats = []
            for i in range(0, len(names), batch_size):
                prompts = [tpl.format(n) for n in names[i:i + batch_size]]
                with self.autocast():
                    feats.append(self.encode_text(self.tokenize(prompts, what="zero-shot prompt"), normalize=True))
            f = torch.cat(feats)
            acc = f if acc is None else acc + f
        return F.normalize(acc / len(templates), dim=-1)

    # --- image (trainers/clip/image.py) --------------------------------
    def encode_image(self, images, visual_prompts=None, deep_visual_prompts=None, return_tokens=False):
        """Image features ``(B, embed_dim)`` (float32, not normalised).

        ``visual_prompts`` ``(n, vision_width)`` are appended after the patch tokens (before
        ``ln_pre``); entry ``j`` of ``deep_visual_prompts`` replaces them at the input of layer
        ``j + 1``. ``return_tokens`` also returns the patch tokens ``(B, n_patches, embed_dim)``
        (after ``ln_post`` and ``proj``; a ModifiedResNet's: :meth:`resnet_dense`). Prompts need a ViT.
        """
        v = self.model.visual
        if visual_prompts is None and not deep_visual_prompts and not return_tokens:
            side = image.attnpool_side(v) if self.is_attnpool_resnet else None
            if side is not None and not images.shape[-2] // 32 == side == images.shape[-1] // 32:
                return self.resnet_dense(images)[0]  # off the pool's grid (input / 32): resized positions
            return self.model.encode_image(images.to(self._image_dtype())).float()
        if return_tokens and visual_prompts is None and not deep_visual_prompts and self.is_attnpool_resnet:
            return self.resnet_dense(images)
        if not self.is_vit:
            raise BackboneError(f"{self.arch}: visual prompts and patch tokens need a ViT image tower, "
                                f"got {type(v).__name__}")
        if getattr(v, "attn_pool", None) is not None:
            raise BackboneError(f"{self.arch}: attentional-pool image towers are not supported with prompts")
        return image.vit_forward(v, images, visual_prompts, deep_visual_prompts, return_tokens)

    def resnet_dense(self, images, positional=True):
        """``(global (B, E), dense (B, H*W, E))`` of a ModifiedResNet (:func:`image.resnet_dense`)."""
        return image.resnet_dense(self.model.visual, images.to(self._image_dtype()), positional)

    def _image_dtype(self):
        v = self.model.visual
        w = getattr(getattr(v, "conv1", None), "weight", None)
        return (w if w is not None else next(v.parameters())).dtype

    def describe(self):
        return (f"{self.name} (open_clip {self.arch}, tag {self.source.get('tag') or '-'}, "
                f"text width {self.text_width}, vision width {self.vision_width}, embed {self.embed_dim}, "
                f"context {self.context_length}, precision {self.precision})")
