"""Resolving and loading CLIP weights offline: the one place that loads CLIP.

``load_clip`` resolves ``MODEL.BACKBONE.NAME`` (+ ``MODEL.BACKBONE.PRETRAINED_TAG``) to a frozen
:class:`~trainers.clip.backbone.ClipBackbone`:

* Dassl/OpenAI names (``ViT-B/16``, ``RN50``, ...) map to the open_clip architecture with OpenAI
  weights (tag ``openai``) unless a tag is given;
* any open_clip architecture with a pretrained tag or a local file as the tag (with a Dassl name
  the file is taken to hold OpenAI weights, i.e. QuickGELU);
* a local checkpoint file as the name: an OpenAI-format CLIP file (TorchScript or state dict;
  architecture inferred, QuickGELU), a world checkpoint, or ``{"model_cfg": {embed_dim,
  vision_cfg, text_cfg, ...}, "state_dict": ...}``;
* ``world-tiny``, ``world-tiny-scenes``: the offline world's CLIPs (``trainers.clip.world``).

Nothing downloads: a tag's weights are looked up in the open_clip URL cache (``~/.cache/clip``)
and the Hugging Face hub cache; when absent the error names both places and how to provide a file.
"""
import difflib
import functools
import glob
import os
import zipfile
from unittest import mock

import torch

from . import world as _world_clip
from .backbone import BackboneError, ClipBackbone, _text_parts, effective_precision

WORLD_NAMES = tuple(_world_clip.CHECKPOINTS)  # "world-tiny", "world-tiny-scenes"

# Dassl / OpenAI CLIP names -> open_clip architecture names (weights: tag "openai").
DASSL_TO_OPEN_CLIP = {**{n: n for n in ("RN50", "RN101", "RN50x4", "RN50x16", "RN50x64")},
                      "ViT-B/32": "ViT-B-32", "ViT-B/16": "ViT-B-16", "ViT-L/14": "ViT-L-14",
                      "ViT-L/14@336px": "ViT-L-14-336"}


class PretrainedWeightsNotFound(FileNotFoundError):
    """Weights of a known pretrained tag are not on disk (nothing is downloaded)."""


def _open_clip():
    import open_clip
    return open_clip


def url_cache_dir():
    """Where open_clip stores weights downloaded from a URL (``~/.cache/clip``)."""
    return os.path.expanduser("~/.cache/clip")


def hf_cache_dir():
    """The Hugging Face hub cache (``$HF_HUB_CACHE`` / ``$HF_HOME/hub`` / ``~/.cache/huggingface/hub``)."""
    from huggingface_hub import constants
    return constants.HF_HUB_CACHE


def _hf_snapshot_pattern(repo_id, filename):
    return os.path.join(hf_cache_dir(), "models--" + repo_id.replace("/", "--"), "snapshots", "*", filename)


def find_pretrained_file(arch, tag):
    """Local file holding open_clip ``arch``'s weights for pretrained ``tag`` (the URL cache
    ``~/.cache/clip/<file>`` or ``<HF_HUB_CACHE>/models--<org>--<repo>/snapshots/*/<file>``); never
    downloads. Raises :class:`PretrainedWeightsNotFound` naming every path looked at."""
    oc = _open_clip()
    pcfg = oc.get_pretrained_cfg(arch, tag)
    if not pcfg:
        tags = oc.list_pretrained_tags_by_model(arch)
        raise BackboneError(
            f"MODEL.BACKBONE.PRETRAINED_TAG {tag!r} is neither a pretrained tag of open_clip model "
            f"{arch!r} nor an existing file; known tags: {tags or 'none'}")
    if pcfg.get("file") and os.path.isfile(pcfg["file"]):
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
        for n in names:  # any snapshot of the hub cache (no refs needed)
            hits = sorted(glob.glob(_hf_snapshot_pattern(repo_id, n)))
            if hits:
                return hits[0]
            looked.append(_hf_snapshot_pattern(repo_id, n))
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
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def _load_state(path):
    """A state dict or checkpoint dict: TorchScript archives via ``torch.jit.load`` (state dict
    only), anything else with ``torch.load(weights_only=True)`` (tensors and plain containers)."""
    if _is_torchscript(path):  # metadata entries: _openai_model drops them
        return dict(torch.jit.load(path, map_location="cpu").state_dict())
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


@functools.lru_cache(maxsize=None)
def bpe_tokenizer(context_length):
    """open_clip's CLIP BPE tokenizer for ``context_length`` (bundled vocabulary, cached)."""
    return _open_clip().SimpleTokenizer(context_length=context_length)


def _cast_low_precision(model, precision):
    if precision in ("fp16", "bf16"):
        _open_clip().convert_weights_to_lp(model, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)


def load_clip(cfg_or_name, pretrained_tag="", device="cpu", precision="fp32", pretrained=None, short_text=None):
    """A frozen :class:`ClipBackbone` (eval mode) on ``device`` from a config (``MODEL.BACKBONE.NAME``,
    ``.PRETRAINED_TAG``, ``.PRETRAINED``, ``.SHORT_TEXT``) or a backbone name; arguments given win.
    ``pretrained=False``: random weights (no file needed); ``precision``: requested (CPU: fp32)."""
    bb = cfg_or_name.MODEL.BACKBONE if hasattr(cfg_or_name, "MODEL") else {"NAME": cfg_or_name}
    name = bb["NAME"]
    pretrained_tag = pretrained_tag or bb.get("PRETRAINED_TAG", "")
    pretrained = bool(bb.get("PRETRAINED", True) if pretrained is None else pretrained)
    short_text = bool(bb.get("SHORT_TEXT", True) if short_text is None else short_text)
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
        quick_gelu, ckpt = False, None
        if pretrained:
            tag = pretrained_tag
            if not tag:
                tags = oc.list_pretrained_tags_by_model(arch)
                if "openai" not in tags:
                    raise BackboneError(
                        f"open_clip model {arch!r} needs MODEL.BACKBONE.PRETRAINED_TAG (known tags: "
                        f"{tags or 'none'}), a local file as the tag, or MODEL.BACKBONE.PRETRAINED False")
                tag = "openai"
            if os.path.isfile(tag):
                ckpt = tag
                quick_gelu = name in DASSL_TO_OPEN_CLIP  # a Dassl name means OpenAI weights (QuickGELU)
            else:
                ckpt = find_pretrained_file(arch, tag)
                quick_gelu = bool(oc.get_pretrained_cfg(arch, tag).get("quick_gelu", False))
            source["tag"], source["file"] = tag, os.path.abspath(ckpt)
        # OpenAI's TorchScript .pt (URL cache)
        ckpt_model = _openai_model(_load_state(ckpt)) if ckpt is not None and _is_torchscript(ckpt) else None
        with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}):
            # pretrained_text False: no base text-tower weights from the Hub
            model = ckpt_model or oc.create_model(arch, pretrained=ckpt, precision="fp32", device="cpu",
                                                  force_quick_gelu=quick_gelu, pretrained_text=False)
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
