"""Checkpoints of learnable parameters only, written atomically.

Layout (Dassl's): ``<dir>/<model_name>/model.pth.tar-<epoch>`` (1-based epoch
count of completed epochs) and ``model-best.pth.tar``; a ``checkpoint`` text
file in the same folder names the latest complete one. A file is written to a
temporary name and renamed, so a crash never leaves a truncated checkpoint.
"""
import io
import os

import torch

from cpt.engine.utils import atomic_write_bytes, mkdir_if_missing


def learnable_state_dict(module):
    """Only the parameters with ``requires_grad=True`` (no frozen CLIP weights)."""
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu().clone() for k, v in module.state_dict(keep_vars=True).items() if k in names}


def save_checkpoint(state, save_dir, is_best=False, model_name=""):
    mkdir_if_missing(save_dir)
    fname = model_name or f"model.pth.tar-{state['epoch']}"
    fpath = os.path.join(save_dir, fname)
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(buf.getvalue(), fpath)
    atomic_write_bytes((fname + "\n").encode(), os.path.join(save_dir, "checkpoint"))
    if is_best:
        atomic_write_bytes(buf.getvalue(), os.path.join(save_dir, "model-best.pth.tar"))
    return fpath


def latest_checkpoint(save_dir):
    marker = os.path.join(save_dir, "checkpoint")
    if not os.path.isfile(marker):
        return None
    with open(marker) as f:
        name = f.read().strip()
    path = os.path.join(save_dir, name)
    return path if os.path.isfile(path) else None


def load_checkpoint(fpath):
    if not os.path.isfile(fpath):
        raise FileNotFoundError(f"No checkpoint at {fpath}")
    return torch.load(fpath, map_location="cpu", weights_only=False)


def load_learnable_state(module, state_dict, source=""):
    """Load learnable parameters; the learnable names must match exactly."""
    want = {n for n, p in module.named_parameters() if p.requires_grad}
    have = set(state_dict)
    missing, unexpected = sorted(want - have), sorted(have - want)
    if missing or unexpected:
        raise RuntimeError(
            f"Checkpoint {source} does not match the model's learnable parameters: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    own = dict(module.named_parameters())
    with torch.no_grad():
        for k, v in state_dict.items():
            if own[k].shape != v.shape:
                raise RuntimeError(f"Checkpoint {source}: shape of {k} is {tuple(v.shape)}, model has {tuple(own[k].shape)}")
            own[k].copy_(v.to(own[k].dtype))
