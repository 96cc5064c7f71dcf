"""The CLIP backbone adapter on open_clip (docs/design.md section 3): the one place that loads CLIP.

``load_clip`` resolves ``MODEL.BACKBONE.NAME`` (+ ``MODEL.BACKBONE.PRETRAINED_TAG``) to a frozen
:class:`ClipBackbone`:

* Dassl/OpenAI names (``ViT-B/16``, ``ViT-B/32``, ``ViT-L/14``, ``RN50``, ``RN101``, ...) map to
  the open_clip architecture with OpenAI weights (tag ``openai``) unless a tag is given;
* any open_clip architecture (``open_clip.list_models()``) with a pretrained tag
  (``open_clip.list_pretrained_tags_by_model(name)``), or with a local file as the tag (with a
  Dassl name the file is taken to hold OpenAI weights, i.e. QuickGELU);
* a local checkpoint file as the name: an OpenAI-format CLIP file (TorchScript archive or state
  dict; architecture inferred, QuickGELU), a world checkpoint, or ``{"model_cfg": {embed_dim,
  vision_cfg, text_cfg, ...}, "state_dict": ...}``;
* ``world-tiny``, ``world-tiny-scenes``: the offline world's CLIPs (``trainers.world_clip``).

Nothing downloads: a tag's weights are looked up in the open_clip URL cache (``~/.cache/clip``)
and the Hugging Face hub cache; when absent the error names both places and how to provide a file.

Precision: ``fp32``, ``fp16``, ``bf16`` (frozen weights cast, LayerNorms stay fp32) or ``amp``
(fp32 weights, :meth:`ClipBackbone.autocast` runs fp16 autocast). The CPU always runs fp32.
Learnable prompt parameters are always kept in fp32 (master weights) and cast where used.

Shared text path (:meth:`ClipBackbone.encode_text_embeddings`): token embeddings of a tokenized
prompt with learnable context spliced in (:class:`PromptLearner`), positional embedding,
transformer with the causal mask, final LayerNorm, EOT token (argmax of the token ids for CLIP's
BPE), projection. Deep prompts (MaPLe) replace, before layer ``i`` (``1 <= i <= k``), the context
tokens of the text tower and the appended prompt tokens of the vision tower; any widths.

Short text path (``MODEL.BACKBONE.SHORT_TEXT``, on by default): under a causal mask the pooled
feature at position ``p`` depends on positions ``0..p`` only, so a batch is run on its first
``max(pooled position) + 1`` positions (positional embedding and mask cut alike) with the same
result as the full context. Used only where that is exact, decided from the model: every entry
above the diagonal of the text tower's attention mask is masked, and the pooling reads one
position per row (``argmax``/``eos``/``first``); otherwise (no mask, e.g. SigLIP-style towers,
or another pool type) the full context runs (:attr:`ClipBackbone.short_text_exact`).
"""
from __future__ import annotations

import contextlib
import difflib
import glob
import inspect
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpt.trainers import world_clip as _world_clip

PRECISIONS = ("fp32", "fp16", "bf16", "amp")
WORLD_NAMES = tuple(_world_clip.CHECKPOINTS)  # "world-tiny", "world-tiny-scenes"

# Dassl / OpenAI CLIP names -> open_clip architecture names (weights: tag "openai").
DASSL_TO_OPEN_CLIP = {
    "RN50": "RN50",
    "RN101": "RN101",
    "RN50x4": "RN50x4",
    "RN50x16": "RN50x16",
    "RN50x64": "RN50x64",
    "ViT-B/32": "ViT-B-32",
    "ViT-B/16": "ViT-B-16",
    "ViT-L/14": "ViT-L-14",
    "ViT-L/14@336px": "ViT-L-14-336",
}


class BackboneError(ValueError):
    """A backbone name, tag or file that cannot be resolved."""


class PretrainedWeightsNotFound(FileNotFoundError):
    """Weights of a known pretrained tag are not on disk (nothing is downloaded)."""


# ---------------------------------------------------------------------------
# Resolution of names, tags and files
# ---------------------------------------------------------------------------


def effective_precision(precision, device):
    """The precision actually used: ``precision`` on CUDA, always ``fp32`` elsewhere."""
    precision = str(precision).lower()
    if precision not in PRECISIONS:
        raise ValueError(f"precision (TRAINER.<NAME>.PREC) must be one of {PRECISIONS}, got {precision!r}")
    if torch.device(device).type != "cuda":
        return "fp32"
    return precision


def _open_clip():
    import open_clip
    return open_clip


def url_cache_dir():
    """Where open_clip stores weights downloaded from a URL (``~/.cache/clip``)."""
    return os.path.expanduser("~/.cache/clip")


def hf_cache_dir():
    """The Hugging Face hub cache (``$HF_HUB_CACHE`` / ``$HF_HOME/hub`` / ``~/.cache/huggingface/hub``)."""
    try:
        from huggingface_hub import constants
        return constants.HF_HUB_CACHE
    except Exception:  # pragma: no cover - huggingface_hub missing
        home = os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface"))
        return os.environ.get("HF_HUB_CACHE", os.path.join(home, "hub"))


def _hf_cached_file(repo_id, filename):
    cache = hf_cache_dir()
    try:
        from huggingface_hub import try_to_load_from_cache
        path = try_to_load_from_cache(repo_id, filename, cache_dir=cache)
        if isinstance(path, str) and os.path.isfile(path):
            return path
    except Exception:
        pass
    # Fallback: scan the snapshot folders directly.
    pattern = os.path.join(cache, "models--" + repo_id.replace("/", "--"), "snapshots", "*", filename)
    hits = sorted(glob.glob(pattern))
    return hits[0] if hits else None


def find_pretrained_file(arch, tag):
    """Local file holding open_clip ``arch``'s weights for pretrained ``tag``; never downloads.

    Looks in the open_clip URL cache (``~/.cache/clip/<file>``) and the Hugging Face hub cache
    (``<HF_HUB_CACHE>/models--<org>--<repo>/snapshots/*/<file>``). Raises
    :class:`PretrainedWeightsNotFound` naming every path looked at.
    """
    oc = _open_clip()
    pcfg = oc.get_pretrained_cfg(arch, tag)
    if not pcfg:
        tags = oc.list_pretrained_tags_by_model(arch)
        raise BackboneError(
            f"MODEL.BACKBONE.PRETRAINED_TAG {tag!r} is neither a pretrained tag of open_clip model "
            f"{arch!r} nor an existing file; known tags: {tags or 'none'}")
    if pcfg.get("file"):
        if os.path.isfile(pcfg["file"]):
            return pcfg["file"]
    looked = []
    hub = pcfg.get("hf_hub", "")
    if hub:
        from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
        repo_id, fname = os.path.split(hub)
        fname = fname or HF_WEIGHTS_NAME
        names = []
        if fname == HF_WEIGHTS_NAME:
            names.append(HF_SAFE_WEIGHTS_NAME)
        elif fname.endswith((".bin", ".pth")):
            names.append(fname[:-4] + ".safetensors")
        names.append(fname)
        for n in names:
            hit = _hf_cached_file(repo_id, n)
            if hit:
                return hit
            looked.append(os.path.join(hf_cache_dir(), "models--" + repo_id.replace("/", "--"),
                                       "snapshots", "*", n))
    url = pcfg.get("url", "")
    if url:
        path = os.path.join(url_cache_dir(), os.path.basename(url))
        if os.path.isfile(path):
            return path
        looked.append(path)
    raise PretrainedWeightsNotFound(
        f"weights of open_clip model {arch!r} with pretrained tag {tag!r} are not on disk, and "
        f"nothing is downloaded. Looked at:\n  " + "\n  ".join(looked) +
        f"\nProvide them by copying the file to one of these places (e.g. on a machine with network: "
        f"`open_clip.create_model('{arch}', pretrained='{tag}')`, then copy ~/.cache), or set "
        f"MODEL.BACKBONE.PRETRAINED_TAG to the path of a local checkpoint file "
        f"(or MODEL.BACKBONE.NAME to an OpenAI-format .pt file).")


def resolve_arch(name):
    """open_clip architecture name for a Dassl or open_clip ``name``; unknown names list valid ones."""
    if name in DASSL_TO_OPEN_CLIP:
        return DASSL_TO_OPEN_CLIP[name]
    oc = _open_clip()
    models = oc.list_models()
    cleaned = name.replace("/", "-")
    if cleaned in models:
        return cleaned
    lower = {m.lower(): m for m in models}
    if cleaned.lower() in lower:
        return lower[cleaned.lower()]
    pool = list(models) + list(DASSL_TO_OPEN_CLIP) + list(WORLD_NAMES)
    close = difflib.get_close_matches(name, pool, n=5, cutoff=0.4)
    examples = list(DASSL_TO_OPEN_CLIP)[:5] + ["ViT-B-16", "ViT-L-14", "convnext_base", "world-tiny"]
    raise BackboneError(
        f"MODEL.BACKBONE.NAME {name!r} is not a known backbone"
        + (f"; closest: {', '.join(close)}" if close else "")
        + f". Valid names include: {', '.join(examples)} (all {len(models)} open_clip names: "
        f"open_clip.list_models()), or a path to a local checkpoint file.")


def _is_torchscript(path):
    """True for a TorchScript archive (OpenAI's original ``.pt`` CLIP files)."""
    import zipfile
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def _load_state(path):
    """A state dict or checkpoint dict: TorchScript archives via ``torch.jit.load`` (state dict
    only), anything else with ``torch.load(weights_only=True)`` (tensors and plain containers)."""
    if _is_torchscript(path):
        sd = torch.jit.load(path, map_location="cpu").state_dict()
        return {k: v for k, v in sd.items() if k not in ("input_resolution", "context_length", "vocab_size")}
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise BackboneError(f"cannot read the checkpoint {path} as tensors (weights_only=True): {e}") from e


def _openai_model(state_dict):
    sd = {k[7:] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    from open_clip.model import build_model_from_openai_state_dict
    # open_clip infers the architecture and loads into fp16 weights; reload in full precision
    model = build_model_from_openai_state_dict(dict(sd), quick_gelu=True, cast_dtype=None).float()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()
                           if k not in ("input_resolution", "context_length", "vocab_size")})
    return model


def _model_from_file(path):
    """(model, tokenizer or None, description) for a checkpoint file given as the backbone name."""
    oc = _open_clip()
    obj = _load_state(path)
    if isinstance(obj, dict) and "token_rows" in obj:
        model, tok = _world_clip.load_world_clip(path, verify=False)
        return model, tok, "world"
    if isinstance(obj, dict) and isinstance(obj.get("model_cfg"), dict) and "state_dict" in obj:
        cfg = dict(obj["model_cfg"])
        cls = oc.model.CustomTextCLIP if cfg.pop("custom_text", False) else oc.model.CLIP
        model = cls(**cfg)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in obj["state_dict"].items()})
        return model, None, "model_cfg"
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and "text_projection" in obj and "token_embedding.weight" in obj:
        return _openai_model(obj), None, "openai-state-dict"
    raise BackboneError(
        f"MODEL.BACKBONE.NAME is the file {path}, but it is not a CLIP checkpoint this loader knows "
        f"(an OpenAI-format TorchScript/state dict, a world checkpoint, or a dict with 'model_cfg' and "
        f"'state_dict'). For another open_clip checkpoint set MODEL.BACKBONE.NAME to its "
        f"architecture (open_clip.list_models()) and MODEL.BACKBONE.PRETRAINED_TAG to the file.")


@contextlib.contextmanager
def _hf_offline():
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


_TOKENIZERS = {}


def bpe_tokenizer(context_length):
    """open_clip's CLIP BPE tokenizer for ``context_length`` (bundled vocabulary, cached)."""
    if context_length not in _TOKENIZERS:
        from open_clip.tokenizer import SimpleTokenizer
        _TOKENIZERS[context_length] = SimpleTokenizer(context_length=context_length)
    return _TOKENIZERS[context_length]


def _cast_low_precision(model, precision):
    if precision in ("fp16", "bf16"):
        from open_clip.model import convert_weights_to_lp
        convert_weights_to_lp(model, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)


def load_clip(cfg_or_name, pretrained_tag="", device="cpu", precision="fp32", pretrained=None, short_text=None):
    """Build a frozen :class:`ClipBackbone` (eval mode) on ``device``.

    ``cfg_or_name``: a config (reads ``MODEL.BACKBONE.NAME``, ``.PRETRAINED_TAG``,
    ``.PRETRAINED``, ``.SHORT_TEXT``) or a backbone name. ``short_text``: the short text path
    (default on; see the module docstring). ``pretrained=False`` builds the architecture with random
    weights (no file needed). ``precision`` is the requested one; the CPU runs fp32.
    """
    if hasattr(cfg_or_name, "MODEL"):
        bb = cfg_or_name.MODEL.BACKBONE
        name = bb.NAME
        pretrained_tag = pretrained_tag or getattr(bb, "PRETRAINED_TAG", "")
        if pretrained is None:
            pretrained = bool(getattr(bb, "PRETRAINED", True))
        if short_text is None:
            short_text = bool(getattr(bb, "SHORT_TEXT", True))
    else:
        name = cfg_or_name
    pretrained = True if pretrained is None else bool(pretrained)
    short_text = True if short_text is None else bool(short_text)
    if not name:
        raise BackboneError("MODEL.BACKBONE.NAME is empty; set e.g. 'ViT-B/16' or 'world-tiny'")
    device = torch.device(device)
    prec = effective_precision(precision, device)
    oc = _open_clip()
    tokenizer = None
    source = {"name": name, "tag": pretrained_tag, "file": ""}

    if name.lower() in WORLD_NAMES:
        if pretrained:
            path = pretrained_tag or _world_clip.CHECKPOINTS[name.lower()]
            model, _ = _world_clip.load_world_clip(path)
            source["file"] = path
        else:
            model = _world_clip.build_world_clip()
        arch = "world-tiny"  # tokenizer: CLIP's BPE with the model's context length (below)
    elif os.path.isfile(name):
        model, tokenizer, kind = _model_from_file(name)
        arch, source["file"] = f"file:{kind}", os.path.abspath(name)
    else:
        arch = resolve_arch(name)
        quick_gelu = False
        ckpt = None
        if pretrained:
            tag = pretrained_tag
            if not tag:
                tags = oc.list_pretrained_tags_by_model(arch)
                if "openai" in tags:
                    tag = "openai"
                else:
                    raise BackboneError(
                        f"open_clip model {arch!r} needs MODEL.BACKBONE.PRETRAINED_TAG (known tags: "
                        f"{tags or 'none'}), a local file as the tag, or MODEL.BACKBONE.PRETRAINED False")
            if os.path.isfile(tag):
                ckpt = tag
                quick_gelu = name in DASSL_TO_OPEN_CLIP  # a Dassl name means OpenAI weights (QuickGELU)
            else:
                ckpt = find_pretrained_file(arch, tag)
                quick_gelu = bool(oc.get_pretrained_cfg(arch, tag).get("quick_gelu", False))
            source["tag"], source["file"] = tag, os.path.abspath(ckpt)
        if ckpt is not None and _is_torchscript(ckpt):  # OpenAI's TorchScript .pt (URL cache)
            ckpt_model = _openai_model(_load_state(ckpt))
        else:
            ckpt_model = None
        with _hf_offline():
            kwargs = {}
            params = inspect.signature(oc.create_model).parameters
            if "pretrained_text" in params:  # no base text-tower weights from the Hub
                kwargs["pretrained_text"] = False
            model = ckpt_model or oc.create_model(arch, pretrained=ckpt, precision="fp32", device="cpu",
                                                  force_quick_gelu=quick_gelu, **kwargs)
            try:
                tokenizer = oc.get_tokenizer(arch)
            except Exception as e:  # an HF tokenizer that is not cached
                raise BackboneError(f"cannot build the tokenizer of {arch!r} offline: {e}") from e
    if tokenizer is None:
        tokenizer = bpe_tokenizer(_text_parts(model).positional_embedding.shape[0])
    model = model.float()
    _cast_low_precision(model, prec)
    backbone = ClipBackbone(model, tokenizer, precision=prec, name=name, arch=arch, source=source,
                            short_text=short_text)
    return backbone.to(device)


# ---------------------------------------------------------------------------
# The backbone
# ---------------------------------------------------------------------------


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


def _run_block(block, x, attn_mask, batch_first):
    """One residual block on NLD input (transposes for sequence-first blocks)."""
    if batch_first:
        return block(x, attn_mask=attn_mask)
    return block(x.transpose(0, 1), attn_mask=attn_mask).transpose(0, 1)


def _replace_tokens(x, prompt, start, stop):
    """``x[:, start:stop] = prompt`` (out of place); prompt ``(n, D)`` or ``(N, n, D)``."""
    if prompt.dim() == 2:
        prompt = prompt.unsqueeze(0).expand(x.shape[0], -1, -1)
    return torch.cat([x[:, :start], prompt.to(x.dtype), x[:, stop:]], dim=1)


class ClipBackbone(nn.Module):
    """A frozen open_clip CLIP with the shared text path and image encoding.

    Attributes: ``model`` (the open_clip model), ``tokenizer``, ``precision`` (effective),
    ``dtype`` (of the transformer weights), ``text_width``, ``vision_width`` (None unless a ViT),
    ``embed_dim``, ``context_length``, ``n_text_layers``, ``n_vision_layers``, ``name``, ``arch``,
    ``source`` (dict: name, tag, file; used in cache keys), ``short_text`` (the short text path is
    requested), ``short_text_exact`` (it is exact for this text tower; see the module docstring).
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
        # short text path: requested (MODEL.BACKBONE.SHORT_TEXT) and exact for this text tower
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
        # dense (per-location) image features: ViT patch tokens, or the attention-pool value path of a
        # ModifiedResNet (RN50, RN101, ...); see encode_image(return_tokens=True)
        self.has_dense_features = self.is_vit or self.is_attnpool_resnet
        self.embed_dim = getattr(v, "output_dim", None) or self._infer_embed_dim()

    def _infer_embed_dim(self):
        proj = self._text.text_projection
        if isinstance(proj, nn.Linear):
            return proj.out_features
        return proj.shape[1] if proj is not None else self.text_width

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
        ids = self.tokenizer(list(texts))
        return ids.to(self.device)

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
        a list of ``(n, text_width)`` (or ``(N, n, text_width)``) tensors; entry ``j`` replaces the
        tokens ``ctx_slice`` (default ``1 : 1 + n``) at the input of layer ``j + 1``.
        With ``return_tokens`` also returns the features of every position ``(N, L, embed_dim)``
        (float32, not normalised): the final LayerNorm and the projection applied to each token,
        as for the EOT token (TaI-DPT's token-level text features); row ``i`` of the pooled
        output equals the tokens' entry at the EOT position. With the short path the positions
        after the batch's longest prefix (all after every row's EOT) are not computed and are 0.
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
        mask = t.attn_mask
        if mask is not None:
            mask = mask[:n_tok, :n_tok]
        batch_first = getattr(t.transformer, "batch_first", False)
        for i, block in enumerate(t.transformer.resblocks):
            if 1 <= i <= len(deep_prompts):
                x = _replace_tokens(x, deep_prompts[i - 1], *ctx_slice)
            x = _run_block(block, x, mask, batch_first)
        proj = t.text_projection
        if return_tokens:
            tokens = t.ln_final(x)
            if proj is not None:
                tokens = proj(tokens) if isinstance(proj, nn.Linear) else tokens @ proj.to(tokens.dtype)
            tokens = tokens.float()
            if n_tok < n_full:
                tokens = F.pad(tokens, (0, 0, 0, n_full - n_tok))
            return tokens[torch.arange(x.shape[0], device=x.device), pos], tokens
        x = x[torch.arange(x.shape[0], device=x.device), pos]
        x = t.ln_final(x)
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

    # --- image --------------------------------------------------------
    def _vit_embed(self, images):
        v = self.model.visual
        x = v.conv1(images.to(v.conv1.weight.dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        return x + v.positional_embedding.to(x.dtype)

    def encode_image(self, images, visual_prompts=None, deep_visual_prompts=None, return_tokens=False):
        """Image features ``(B, embed_dim)`` (float32, not normalised).

        ``visual_prompts`` ``(n, vision_width)`` are appended after the patch tokens (before
        ``ln_pre``); entry ``j`` of ``deep_visual_prompts`` replaces those last ``n`` tokens at the
        input of layer ``j + 1``. With ``return_tokens`` also returns the patch tokens
        ``(B, n_patches, embed_dim)``: after ``ln_post``, projected by ``proj`` (prompt tokens
        excluded). Prompts and tokens need a ViT image tower.
        """
        v = self.model.visual
        if visual_prompts is None and not deep_visual_prompts and not return_tokens:
            if self.is_attnpool_resnet and not self._resnet_native_grid(images):
                return self._resnet_dense(images)[0]  # resized positional embedding
            return self.model.encode_image(images.to(self._image_dtype())).float()
        if return_tokens and visual_prompts is None and not deep_visual_prompts and self.is_attnpool_resnet:
            return self._resnet_dense(images)
        if not self.is_vit:
            raise BackboneError(f"{self.arch}: visual prompts and patch tokens need a ViT image tower, "
                                f"got {type(v).__name__}")
        if getattr(v, "attn_pool", None) is not None:
            raise BackboneError(f"{self.arch}: attentional-pool image towers are not supported with prompts")
        x = self._vit_embed(images)
        n_prompt = 0
        if visual_prompts is not None:
            n_prompt = visual_prompts.shape[-2]
            vp = visual_prompts.to(x.dtype)
            if vp.dim() == 2:
                vp = vp.unsqueeze(0).expand(x.shape[0], -1, -1)
            x = torch.cat([x, vp], dim=1)
        x = v.ln_pre(x)
        deep = list(deep_visual_prompts or [])
        if deep and n_prompt == 0:
            raise ValueError("deep visual prompts need visual_prompts (the tokens they replace)")
        if len(deep) >= self.n_vision_layers:
            raise ValueError(f"{len(deep)} deep visual prompts for a {self.n_vision_layers}-layer image tower")
        batch_first = getattr(v.transformer, "batch_first", False)
        n_tok = x.shape[1]
        for i, block in enumerate(v.transformer.resblocks):
            if 1 <= i <= len(deep):
                x = _replace_tokens(x, deep[i - 1], n_tok - n_prompt, n_tok)
            x = _run_block(block, x, None, batch_first)
        if n_prompt:
            x = x[:, :-n_prompt]
        if hasattr(v, "_pool"):
            pooled, tokens = v._pool(x)
        else:  # older open_clip
            x = v.ln_post(x)
            pooled, tokens = x[:, 0], x[:, 1:]
        if v.proj is not None:
            pooled = pooled @ v.proj
            tokens = tokens @ v.proj
        if return_tokens:
            return pooled.float(), tokens.float()
        return pooled.float()

    def _attnpool_side(self):
        """Side of the square feature grid the attention pool was trained on (its positional embedding)."""
        return int(round((self.model.visual.attnpool.positional_embedding.shape[0] - 1) ** 0.5))

    def _resnet_native_grid(self, images):
        """Whether ``images`` give the attention pool's native feature grid (input / 32)."""
        side = self._attnpool_side()
        return images.shape[-2] // 32 == side and images.shape[-1] // 32 == side

    def _resnet_dense(self, images, positional=True):
        """``(global (B, E), dense (B, H*W, E))`` of a ModifiedResNet (float32, not normalised).

        The global feature is the attention pool's output, as in ``encode_image``. The dense
        feature of location ``k`` is the pool's value path alone, ``c_proj(v_proj(x_k + pos_k))``:
        the attention pool's output is the attention-weighted mean of these values over the H*W
        locations and the mean token, so they live in the same embedding space (TaI-DPT's RN50
        local features; MaskCLIP's dense features). When the feature grid differs from the one the
        pool was trained on, the spatial positional embedding is resized (bicubic).
        ``positional=False`` adds no positional embedding at all (upstream TaI-DPT's evaluation).
        """
        v = self.model.visual
        pool = v.attnpool
        x = images.to(self._image_dtype())
        x = v.stem(x)
        x = v.layer4(v.layer3(v.layer2(v.layer1(x))))
        b, c, h, w = x.shape
        x = x.reshape(b, c, h * w).permute(2, 0, 1)  # (HW, B, C)
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)  # (HW + 1, B, C)
        pos = pool.positional_embedding.to(x.dtype)
        if not positional:
            pos = torch.zeros_like(x[:, 0])
        elif pos.shape[0] != h * w + 1:
            side = self._attnpool_side()
            grid = pos[1:].reshape(1, side, side, c).permute(0, 3, 1, 2).float()
            grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
            pos = torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(h * w, c).to(x.dtype)], dim=0)
        x = x + pos[:, None, :]
        pooled, _ = F.multi_head_attention_forward(
            query=x[:1], key=x, value=x, embed_dim_to_check=c, num_heads=pool.num_heads,
            q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight,
            v_proj_weight=pool.v_proj.weight, in_proj_weight=None,
            in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
            out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias,
            use_separate_proj_weight=True, training=False, need_weights=False)
        dense = pool.c_proj(pool.v_proj(x[1:]))  # (HW, B, E)
        return pooled[0].float(), dense.permute(1, 0, 2).float()

    def _image_dtype(self):
        v = self.model.visual
        w = getattr(getattr(v, "conv1", None), "weight", None)
        if w is None:
            w = next(v.parameters())
        return w.dtype

    def describe(self):
        return (f"{self.name} (open_clip {self.arch}, tag {self.source.get('tag') or '-'}, "
                f"text width {self.text_width}, vision width {self.vision_width}, embed {self.embed_dim}, "
                f"context {self.context_length}, precision {self.precision})")


# ---------------------------------------------------------------------------
# Learnable context (CoOp-style prompt assembly), shared by every prompt learner
# ---------------------------------------------------------------------------


class PromptLearner(nn.Module):
    """Learnable context spliced into the token embeddings of ``"<ctx> <classname>."``.

    ``n_ctx``: number of learnable tokens; ``None`` with ``ctx_init`` means the token count of
    ``ctx_init`` (CoOp). With ``ctx_init`` the first ``n_ctx`` tokens of ``ctx_init`` initialise
    the context and the rest of ``ctx_init`` stays fixed text after it (MaPLe: 2 of
    "a photo of a"); without, the context is drawn from N(0, ``init_std``^2) and the placeholder
    text is ``"X X ... X"``. ``csc``: one context per class. ``class_token_position``: ``end``
    (``[SOS][ctx][name].[EOT]``), ``middle`` (``[SOS][ctx[:n/2]][name][ctx[n/2:]].[EOT]``) or
    ``front`` (``[SOS][name][ctx].[EOT]``). ``cfg_key`` names the config node in error messages.

    ``forward(ctx_shift=None)`` returns the prompt embeddings ``(C, L, D)``; ``ctx_shift``
    ``(B, D)`` (CoCoOp's image-conditioned bias) gives ``(B, C, L, D)``. ``tokenized_prompts``
    ``(C, L)`` holds the matching token ids. Parameters are float32; embeddings are cast to the
    backbone dtype.
    """

    def __init__(self, clip, classnames, n_ctx=16, ctx_init="", csc=False, class_token_position="end",
                 init_std=0.02, cfg_key="TRAINER"):
        super().__init__()
        if class_token_position not in ("end", "middle", "front"):
            raise ValueError(f"{cfg_key}.CLASS_TOKEN_POSITION must be end, middle or front, "
                             f"got {class_token_position!r}")
        classnames = [c.replace("_", " ") for c in classnames]
        self.n_cls = len(classnames)
        self.classnames = classnames
        self.csc = bool(csc)
        self.class_token_position = class_token_position
        self.cfg_key = cfg_key
        d = clip.text_width
        ctx_init = (ctx_init or "").replace("_", " ").strip()
        if ctx_init:
            n_init = clip.count_tokens(ctx_init)
            if n_init is None:
                raise BackboneError("CTX_INIT needs a tokenizer that can count tokens (CLIP BPE)")
            if n_init + 2 > clip.context_length:
                raise ValueError(
                    f"{cfg_key}.CTX_INIT {ctx_init!r} has {n_init} tokens, longer than the text context "
                    f"length {clip.context_length} of backbone {clip.name!r} allows (with start/end tokens)")
            n_ctx = n_init if n_ctx is None else int(n_ctx)
            if not 1 <= n_ctx <= n_init:
                raise ValueError(f"{cfg_key}.N_CTX={n_ctx} must be between 1 and the {n_init} tokens of "
                                 f"{cfg_key}.CTX_INIT {ctx_init!r}")
            if n_ctx < n_init and class_token_position != "end":
                raise ValueError(f"{cfg_key}.CLASS_TOKEN_POSITION {class_token_position!r} needs N_CTX equal "
                                 f"to the token count of CTX_INIT ({n_init})")
            ids = clip.tokenize(ctx_init, what=f"{cfg_key}.CTX_INIT")
            ctx = clip.embed_tokens(ids)[0, 1:1 + n_ctx].float().clone()
            if self.csc:
                ctx = ctx.unsqueeze(0).repeat(self.n_cls, 1, 1)
            prefix_text = ctx_init
        else:
            n_ctx = 16 if n_ctx is None else int(n_ctx)
            if n_ctx < 1:
                raise ValueError(f"{cfg_key}.N_CTX must be >= 1, got {n_ctx}")
            shape = (self.n_cls, n_ctx, d) if self.csc else (n_ctx, d)
            ctx = torch.empty(shape)
            nn.init.normal_(ctx, std=init_std)
            prefix_text = " ".join(["X"] * n_ctx)
        self.n_ctx = n_ctx
        self.ctx_init = ctx_init
        self.prefix_text = prefix_text
        self.ctx = nn.Parameter(ctx.to(clip.device))

        prompts = [f"{prefix_text} {name}." for name in classnames]
        tokenized = clip.tokenize(prompts, what=f"prompt (with {cfg_key}.CTX_INIT / N_CTX)")
        emb = clip.embed_tokens(tokenized)
        self.name_lens = [clip.count_tokens(n) or 0 for n in classnames]
        self.register_buffer("tokenized_prompts", tokenized, persistent=False)
        self.register_buffer("token_prefix", emb[:, :1].clone(), persistent=False)
        self.register_buffer("token_suffix", emb[:, 1 + n_ctx:].clone(), persistent=False)
        perm = self._layout_permutation(tokenized.shape[1])
        self.register_buffer("layout", perm.to(clip.device) if perm is not None else None, persistent=False)

    def _layout_permutation(self, n_tok):
        """Per-class gather index from the ``end`` layout to the configured one (None for ``end``)."""
        if self.class_token_position == "end":
            return None
        n, half = self.n_ctx, self.n_ctx // 2
        rows = []
        for nl in self.name_lens:
            ctx = list(range(1, 1 + n))
            name = list(range(1 + n, 1 + n + nl))
            rest = list(range(1 + n + nl, n_tok))
            if self.class_token_position == "middle":
                order = [0] + ctx[:half] + name + ctx[half:] + rest
            else:
                order = [0] + name + ctx + rest
            rows.append(order)
        return torch.tensor(rows, dtype=torch.long)

    def _apply_layout(self, x):
        if self.layout is None:
            return x
        idx = self.layout.view(*([1] * (x.dim() - 3)), *self.layout.shape, 1)
        idx = idx.expand(*x.shape[:-3], *self.layout.shape, x.shape[-1])
        return x.gather(-2, idx)

    def token_layout(self):
        """Token ids ``(C, L)`` in the configured layout (context tokens from the placeholder text)."""
        if self.layout is None:
            return self.tokenized_prompts
        return self.tokenized_prompts.gather(1, self.layout)

    def context(self, ctx_shift=None):
        """Context ``(n, D)`` (CSC: ``(C, n, D)``); with ``ctx_shift`` ``(B, D)``: ``(B, n, D)``
        (CSC: ``(B, C, n, D)``)."""
        ctx = self.ctx
        if ctx_shift is not None:
            shift = ctx_shift.to(ctx.dtype)
            ctx = ctx.unsqueeze(0) + (shift[:, None, :] if not self.csc else shift[:, None, None, :])
        return ctx

    def assemble(self, ctx):
        """Prompt embeddings from context ``ctx`` (shapes as returned by :meth:`context`)."""
        dtype = self.token_prefix.dtype
        generic = ctx.dim() == 2 or (ctx.dim() == 3 and not self.csc)
        lead = ctx.shape[:-2] if generic else ctx.shape[:-3]
        c, dim = self.n_cls, ctx.shape[-1]
        if generic:
            ctx = ctx.unsqueeze(-3).expand(*lead, c, self.n_ctx, dim)
        prefix = self.token_prefix.expand(*lead, *self.token_prefix.shape)
        suffix = self.token_suffix.expand(*lead, *self.token_suffix.shape)
        x = torch.cat([prefix, ctx.to(dtype), suffix], dim=-2)
        return self._apply_layout(x)

    def forward(self, ctx_shift=None):
        return self.assemble(self.context(ctx_shift))

    def prompts_for_names(self, clip, names):
        """(embeddings ``(K, L, D)``, token ids) of ``"<ctx> <name>."`` for arbitrary ``names``.

        Uses the generic context (not available with class-specific context); ``end`` layout
        only. For DOR's outlier words.
        """
        if self.csc:
            raise ValueError(f"{self.cfg_key}.CSC True: class-specific context has no prompt for other words")
        if self.class_token_position != "end":
            raise ValueError(f"{self.cfg_key}.CLASS_TOKEN_POSITION must be end to prompt other words")
        names = [n.replace("_", " ") for n in names]
        ids = clip.tokenize([f"{self.prefix_text} {n}." for n in names], what="prompt")
        emb = clip.embed_tokens(ids)
        k = emb.shape[0]
        ctx = self.ctx.to(emb.dtype).unsqueeze(0).expand(k, -1, -1)
        x = torch.cat([emb[:, :1], ctx, emb[:, 1 + self.n_ctx:]], dim=1)
        return x, ids


def encode_prompts(clip, embeds, token_ids, deep_prompts=None, max_rows=None):
    """Encode prompt embeddings of any leading shape ``(..., C, L, D)`` -> ``(..., C, E)``.

    ``token_ids`` ``(C, L)`` is broadcast over the leading dims; ``max_rows`` encodes in chunks
    of at most that many sequences (CoCoOp's per-image prompts). With the short text path the
    prompts are cut to the positions the transformer needs before they are flattened.
    """
    min_length = 1 + deep_prompts[0].shape[-2] if deep_prompts else 0
    keep = clip.text_keep_length(token_ids, min_length)
    embeds, token_ids = embeds[..., :keep, :], token_ids[..., :keep]
    lead = embeds.shape[:-2]
    flat = embeds.reshape(-1, *embeds.shape[-2:])
    ids = token_ids.expand(*lead, token_ids.shape[-1]).reshape(-1, token_ids.shape[-1])
    if max_rows is None or flat.shape[0] <= max_rows:
        out = clip.encode_text_embeddings(flat, ids, deep_prompts=deep_prompts)
    else:
        out = torch.cat([clip.encode_text_embeddings(flat[i:i + max_rows], ids[i:i + max_rows],
                                                     deep_prompts=deep_prompts)
                         for i in range(0, flat.shape[0], max_rows)])
    return out.reshape(*lead, out.shape[-1])
