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

from ..calibration.fileio import atomic_write_bytes
from .faults import fault_point
from .utils import get_rank, mkdir_if_missing, remove_partial_writes


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
                raise RuntimeError(f"Checkpoint {source}: shape of {k} is {tuple(v.shape)}, "
                                   f"model has {tuple(own[k].shape)}")
            own[k].copy_(v.to(own[k].dtype))


class CheckpointMixin:
    """The trainer's checkpoint files (Dassl's ``save_model`` / ``resume_model_if_exist`` / ``load_model``)
    over :meth:`get_model_names` and the registered models, optimizers and schedulers; the fields beside
    the weights come from :meth:`checkpoint_extra` and go back through :meth:`restore_extra`."""

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        if get_rank() != 0:
            return
        for name in self.get_model_names():
            state = {
                "state_dict": learnable_state_dict(self._models[name]),
                "epoch": epoch + 1,
                "optimizer": self._optims[name].state_dict() if self._optims[name] else None,
                "scheduler": self._scheds[name].state_dict() if self._scheds[name] else None,
                "val_result": val_result,
                "trainer": self._trainer_name(),
                "rng": rng_state(),
                **self.checkpoint_extra(),
            }
            save_checkpoint(state, os.path.join(directory, name), is_best=is_best, model_name=model_name)

    def checkpoint_extra(self):
        """Hook: more fields for every checkpoint (the run's identity, the best validation result)."""
        return {}

    def restore_extra(self, ckpt):
        """Hook: read back what :meth:`checkpoint_extra` stored, from the checkpoint a run resumes."""

    def resume_model_if_exist(self, directory):
        """Restore the last complete epoch from ``directory``; returns the epoch to start at."""
        names = self.get_model_names()
        if os.path.abspath(directory) == os.path.abspath(self.output_dir) and get_rank() == 0:
            for n in names:  # temporary files of a checkpoint write that was killed (this run holds the lock)
                for path in remove_partial_writes(os.path.join(directory, n)):
                    self.logger.info(f"Removed {path} (a checkpoint write that did not finish)")
        paths = [latest_checkpoint(os.path.join(directory, n)) for n in names]
        if not names or any(p is None for p in paths):
            return 0
        self.logger.info("Found checkpoint at {} (will resume training)".format(directory))
        for name, path in zip(names, paths):
            ckpt = self._load_into(name, path)
            for table, key in ((self._optims, "optimizer"), (self._scheds, "scheduler")):
                if table[name] is not None and ckpt.get(key):
                    table[name].load_state_dict(ckpt[key])
            start_epoch = ckpt["epoch"]
            rng = ckpt.get("rng")
        set_rng_state(rng)
        self.restore_extra(ckpt)
        self.logger.info(f"Resumed from {paths[0]} (epoch {start_epoch})")
        dl = self.cfg.DATALOADER if hasattr(self, "cfg") else None
        if dl is not None and dl.NUM_WORKERS > 0 and dl.PERSISTENT_WORKERS:
            self.logger.warning("Note: with DATALOADER.NUM_WORKERS > 0 and PERSISTENT_WORKERS the resumed epochs' "
                                "data order and augmentations can differ from an uninterrupted run's (worker RNG "
                                "is not checkpointed); set PERSISTENT_WORKERS False for an exact resume")
        return start_epoch

    def _load_into(self, name, path):
        """Load the checkpoint at ``path`` into model ``name``; returns the checkpoint dict."""
        ckpt = load_checkpoint(path)
        owner = ckpt.get("trainer")
        if owner is not None and owner != self._trainer_name():
            raise CheckpointError(
                f"Checkpoint {path} was written by trainer {owner!r}, not {self._trainer_name()!r}")
        load_learnable_state(self._models[name], ckpt["state_dict"], path)
        return ckpt

    def load_model(self, directory, epoch=None):
        """Load learnable weights for evaluation (``--eval-only --model-dir --load-epoch``)."""
        names = self.get_model_names()
        if not names:
            self.logger.info("Note: this trainer has no learnable model; nothing to load")
            return
        for name in names:
            folder = os.path.join(directory, name)
            if epoch is not None:
                path = os.path.join(folder, f"model.pth.tar-{epoch}")
            else:
                path = os.path.join(folder, "model-best.pth.tar")
                if not os.path.isfile(path):
                    path = latest_checkpoint(folder) or path
            if not os.path.isfile(path):
                have = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
                raise CheckpointError(
                    f"No checkpoint for model {name!r} at {path}"
                    + (f" (found: {', '.join(have)})" if have else f" ({folder} does not exist)"))
            ckpt = self._load_into(name, path)
            self.check_classes(ckpt, path)
            val = ckpt.get("val_result")
            val = f", val_result={val:.1f}" if isinstance(val, (int, float)) else ""
            self.logger.info(f"Load {path} to {name} (epoch={ckpt.get('epoch')}{val})")
            self.loaded_epoch = ckpt.get("epoch")  # recorded in results.json of an --eval-only run
            latest = latest_checkpoint(folder)  # how far the run in ``directory`` trained
            self.trained_epochs = load_checkpoint(latest).get("epoch") if latest else ckpt.get("epoch")

    def check_classes(self, ckpt, path):
        """Hook: refuse a checkpoint whose class-specific state belongs to other classes."""
