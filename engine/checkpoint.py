"""Checkpoints of the learnable state (parameters with grad, persistent buffers), written atomically.

Layout (Dassl's): ``<dir>/<model_name>/model.pth.tar-<epoch>`` (1-based count of completed epochs) and
``model-best.pth.tar``; a ``checkpoint`` text file in the same folder names the latest complete one.
A file is written to a temporary name and renamed, so a crash never leaves a truncated checkpoint.
"""
import contextlib
import io
import os
import pickle
import random
import zipfile

import numpy as np
import torch

from .faults import fault_point
from .utils import mkdir_if_missing
from ..calibration.fileio import atomic_write_bytes


def rng_state():
    """Python, numpy, torch (and CUDA) RNG states, saved in every checkpoint."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    if not state:
        return
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserve_rng():
    """Leave the global RNG states as they were found (evaluation and feature extraction must not
    change the random stream training continues with: a DataLoader draws its base seed from it)."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not belong to this trainer."""


def _learnable_names(module):
    """(parameters with ``requires_grad``, persistent buffers): what a checkpoint holds."""
    params = dict(module.named_parameters(remove_duplicate=False))
    learn = {n for n, p in params.items() if p.requires_grad}
    buffers = {n for n in module.state_dict(keep_vars=True) if n not in params}
    return learn, buffers


def learnable_state_dict(module):
    """The parameters with ``requires_grad=True`` and the persistent buffers (e.g. a running
    average of the prompts), detached CPU copies; no frozen CLIP weights."""
    learn, buffers = _learnable_names(module)
    return {k: v.detach().cpu().clone() for k, v in module.state_dict(keep_vars=True).items()
            if k in learn or k in buffers}


def save_checkpoint(state, save_dir, is_best=False, model_name=""):
    mkdir_if_missing(save_dir)
    fname = model_name or f"model.pth.tar-{state['epoch']}"
    fpath = os.path.join(save_dir, fname)
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(buf.getvalue(), fpath, midway=lambda: fault_point("checkpoint_write"))
    atomic_write_bytes((fname + "\n").encode(), os.path.join(save_dir, "checkpoint"))
    if is_best:
        atomic_write_bytes(buf.getvalue(), os.path.join(save_dir, "model-best.pth.tar"))
    return fpath


def latest_checkpoint(save_dir):
    marker = os.path.join(save_dir, "checkpoint")
    if not os.path.isfile(marker):
        return None
    with open(marker) as f:
        path = os.path.join(save_dir, f.read().strip())
    return path if os.path.isfile(path) else None


def load_checkpoint(fpath):
    """The checkpoint dict at ``fpath``; a truncated or foreign file raises ``CheckpointError`` naming it."""
    if not os.path.isfile(fpath):
        raise FileNotFoundError(f"No checkpoint at {fpath}")
    try:
        ckpt = torch.load(fpath, map_location="cpu", weights_only=False)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            AttributeError, ModuleNotFoundError) as e:
        size = os.path.getsize(fpath)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"checkpoint {fpath} ({size:,} bytes) is truncated or not a PyTorch file: {reason}")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        what = f"keys {sorted(map(str, ckpt))[:5]}" if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"checkpoint {fpath} is not a checkpoint of this project: expected a dict with "
                              f"'state_dict', 'epoch', 'optimizer' (as save_checkpoint writes), got {what}")
    return ckpt


def load_learnable_state(module, state_dict, source=""):
    """Load what :func:`learnable_state_dict` saved. The learnable parameter names must match
    exactly; persistent buffers are loaded when present (a checkpoint written before they were
    saved has none, and the module keeps its own)."""
    learn, buffers = _learnable_names(module)
    have = set(state_dict)
    missing, unexpected = sorted(learn - have), sorted(have - learn - buffers)
    if missing or unexpected:
        raise RuntimeError(
            f"Checkpoint {source} does not match the model's learnable parameters: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    own = module.state_dict(keep_vars=True)
    with torch.no_grad():
        for k, v in state_dict.items():
            if own[k].shape != v.shape:
                raise RuntimeError(f"Checkpoint {source}: shape of {k} is {tuple(v.shape)}, model has {tuple(own[k].shape)}")
            own[k].copy_(v.to(own[k].dtype))
