"""The offline world's tiny CLIP (docs/design.md §8): config, builder and offline loader.

Self-contained: imports torch, numpy and open_clip only (never ``datasets/``).

Model: an open_clip ``CLIP`` built from :data:`WORLD_TINY_CFG` (ViT image tower, 32 px, patch 8,
width 128, 6 layers; causal text transformer of width 128, 4 layers, context 24; embedding 128;
logit scale initialised at 30, clamped at 100 during pretraining), used with open_clip's real
BPE tokenizer (``SimpleTokenizer`` with ``context_length=24``; no network).
Images: RGB, 32 x 32, scaled to [0, 1] then normalised with CLIP's mean/std
(:data:`WORLD_MEAN`, :data:`WORLD_STD`).

Checkpoint (``trainers/weights/world_tiny.pt``): a dict with ``config``, ``state_dict`` (fp16, all
but the token-embedding table) and the table rows pretraining changed (``token_ids`` int64,
``token_rows`` fp16). Every other row is the seeded initialisation of :func:`init_token_table`,
which those rows still held after pretraining (no weight decay on the table), so the loaded model
equals the trained one up to fp16 rounding. The manifest (``.json`` beside it) records the sha256
of the ``.pt`` file, checked at load.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os

import torch

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
DEFAULT_CHECKPOINT = os.path.join(WEIGHTS_DIR, "world_tiny.pt")
# MODEL.BACKBONE.NAME -> shipped checkpoint: the single-label world's; continued on multi-object
# scenes (ShapeWorldML); continued in two stages on images drawn in named renderings (ShapeWorldRender)
CHECKPOINTS = {"world-tiny": DEFAULT_CHECKPOINT,
               "world-tiny-scenes": os.path.join(WEIGHTS_DIR, "world_tiny_scenes.pt"),
               "world-tiny-render": os.path.join(WEIGHTS_DIR, "world_tiny_render.pt")}
TOKEN_INIT_SEED = 0
WORLD_MEAN = (0.48145466, 0.4578275, 0.40821073)
WORLD_STD = (0.26862954, 0.26130258, 0.27577711)

WORLD_TINY_CFG = {
    "embed_dim": 128,
    "init_logit_scale": math.log(30.0),
    "vision_cfg": {"image_size": 32, "layers": 6, "width": 128, "head_width": 32,
                   "patch_size": 8},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 128, "heads": 4,
                 "layers": 4},
}


def init_token_table(vocab_size, width, seed=TOKEN_INIT_SEED):
    """The fixed initial token-embedding table: N(0, 0.02^2) from a seeded torch.Generator."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(vocab_size, width, generator=g) * 0.02


def build_world_clip(cfg=None):
    """A randomly initialised open_clip ``CLIP`` of the world config (token table seeded)."""
    from open_clip.model import CLIP
    cfg = copy.deepcopy(cfg or WORLD_TINY_CFG)
    model = CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"],
                 text_cfg=cfg["text_cfg"], init_logit_scale=cfg["init_logit_scale"])
    with torch.no_grad():
        tc = cfg["text_cfg"]
        model.token_embedding.weight.copy_(init_token_table(tc["vocab_size"], tc["width"]))
    return model


def get_world_tokenizer(cfg=None):
    """open_clip's BPE tokenizer with the world's context length (bundled vocab, offline)."""
    from open_clip.tokenizer import SimpleTokenizer
    cfg = cfg or WORLD_TINY_CFG
    return SimpleTokenizer(context_length=cfg["text_cfg"]["context_length"])


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pack_checkpoint(model, cfg=None):
    """The checkpoint dict of a trained model (see module docstring)."""
    cfg = copy.deepcopy(cfg or WORLD_TINY_CFG)
    sd = model.state_dict()
    table = sd.pop("token_embedding.weight").detach().float().cpu()
    init = init_token_table(*table.shape)
    changed = torch.nonzero((table != init).any(dim=1)).flatten()
    return {
        "config": cfg,
        "state_dict": {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu()
                       for k, v in sd.items()},
        "token_ids": changed.to(torch.int64),
        "token_rows": table[changed].half(),
        "token_init_seed": TOKEN_INIT_SEED,
    }


def unpack_checkpoint(ckpt):
    """A float32 model (train mode) from a checkpoint dict."""
    cfg = ckpt["config"]
    model = build_world_clip(cfg)
    tc = cfg["text_cfg"]
    table = init_token_table(tc["vocab_size"], tc["width"], ckpt.get("token_init_seed", 0))
    table[ckpt["token_ids"]] = ckpt["token_rows"].float()
    sd = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    sd["token_embedding.weight"] = table
    model.load_state_dict(sd, strict=True)
    return model


def manifest_path(path):
    return os.path.splitext(path)[0] + ".json"


def manifest_probability_map(path, name):
    """``(scale, bias)`` of ``p = sigmoid(scale * cosine + bias)`` recorded as
    ``<name>_probability_map`` in the manifest beside checkpoint ``path`` (fitted on validation
    images when the checkpoint was made, ``scripts/pretrain_world_clip.py``)."""
    mpath = manifest_path(path) if path else "none: the backbone was not loaded from a file"
    if not os.path.isfile(mpath):
        raise FileNotFoundError(f"probability map {name!r}: no checkpoint manifest beside the backbone ({mpath})")
    with open(mpath) as f:
        manifest = json.load(f)
    entry = manifest.get(f"{name}_probability_map")
    if not isinstance(entry, dict) or not {"scale", "bias"} <= set(entry):
        known = sorted(k[: -len("_probability_map")] for k in manifest if k.endswith("_probability_map"))
        raise KeyError(f"{mpath} has no '{name}_probability_map' with scale and bias "
                       f"(maps it records: {known or 'none'})")
    return float(entry["scale"]), float(entry["bias"])


def load_world_clip(path=None, verify=True):
    """The pretrained world CLIP in eval mode (float32, CPU) and its tokenizer.

    Returns ``(model, tokenizer)``; ``tokenizer(list_of_str)`` gives a LongTensor [N, 24].
    ``verify`` checks the file's sha256 against the manifest next to it.
    """
    path = path or DEFAULT_CHECKPOINT
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"world CLIP checkpoint not found at {path}; the shipped ones are {sorted(CHECKPOINTS.values())} "
            "(create one with: python scripts/pretrain_world_clip.py; see its docstring)")
    if verify:
        mpath = manifest_path(path)
        if not os.path.isfile(mpath):
            raise FileNotFoundError(f"manifest {mpath} missing (expected next to {path})")
        with open(mpath) as f:
            manifest = json.load(f)
        digest = sha256_file(path)
        if manifest.get("sha256") != digest:
            raise ValueError(f"sha256 of {path} is {digest}, manifest {mpath} says "
                             f"{manifest.get('sha256')}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = unpack_checkpoint(ckpt).eval()
    return model, get_world_tokenizer(ckpt["config"])


def images_to_tensor(images_uint8):
    """uint8 array/tensor [N, H, W, 3] -> normalised float tensor [N, 3, H, W]."""
    x = torch.as_tensor(images_uint8).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(WORLD_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(WORLD_STD).view(1, 3, 1, 1)
    return (x - mean) / std
