"""Small utilities with Dassl's names: IO, seeding, logging, meters."""
import contextlib
import json
import logging
import os
import random
import sys
from collections import defaultdict

import numpy as np

from ..calibration.fileio import TMP_PREFIX, atomic_write_json


def mkdir_if_missing(dirname):
    if dirname:
        os.makedirs(dirname, exist_ok=True)


def remove_partial_writes(folder):
    """Remove the temporary files (``.tmp-*``) that a killed :func:`cpt.calibration.fileio.atomic_write_bytes` left in
    ``folder``; call it only while holding the run's lock. Another run's lock attempt
    (``.tmp-lock-*``) is its own to remove. Returns the removed paths."""
    removed = []
    for name in (os.listdir(folder) if os.path.isdir(folder) else []):
        path = os.path.join(folder, name)
        if name.startswith(TMP_PREFIX) and not name.startswith(".tmp-lock-") and os.path.isfile(path):
            os.remove(path)
            removed.append(path)
    return removed


def is_distributed():
    import torch

    return torch.distributed.is_available() and torch.distributed.is_initialized()


def get_rank():
    import torch

    return torch.distributed.get_rank() if is_distributed() else 0


def read_json(fpath):
    with open(fpath, "r") as f:
        return json.load(f)


def write_json(obj, fpath):
    """Write JSON atomically."""
    atomic_write_json(obj, fpath, default=_json_default)


def _json_default(o):
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (tuple, set)):
        return list(o)
    return str(o)


def listdir_nohidden(path, sort=False):
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    return sorted(items) if sort else items


def read_image(path):
    """Read an RGB PIL image; a missing or unreadable file raises an error naming it."""
    from PIL import Image

    if not os.path.exists(path):
        raise FileNotFoundError(f"Image not found: {path}")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except Exception as e:  # PIL raises several types for corrupt files
        raise IOError(f"Cannot read image {path}: {e}") from e


def set_random_seed(seed):
    """Seed python, numpy and torch. Any int >= 0 is a seed (0 included); < 0 does nothing."""
    if seed is None or seed < 0:
        return
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


_LOG_FORMAT = "%(message)s"


class _Formatter(logging.Formatter):
    """Plain lines; text that cannot be encoded (the surrogate escapes Python gives a non-UTF-8 byte of
    a command-line path) is written with backslash escapes instead of failing the handler."""

    def format(self, record):
        return super().format(record).encode("utf-8", "backslashreplace").decode("utf-8")


class LogFileHandler(logging.FileHandler):
    """``log.txt`` (appended, UTF-8): a write that fails (a full disk, a file size limit) raises an
    ``OSError`` naming the file instead of logging's '--- Logging error ---' traceback."""

    def __init__(self, path):
        super().__init__(path, mode="a", encoding="utf-8", errors="backslashreplace")

    def handleError(self, record):
        err = sys.exc_info()[1]
        if isinstance(err, OSError):
            raise OSError(err.errno, f"cannot write log file {self.baseFilename}: {err.strerror or err}") from err
        super().handleError(record)


def setup_logger(output=None, name="cpt", rank=0):
    """Log to stdout and ``<output>/log.txt`` (or ``output`` if it ends in .txt/.log), plain lines as
    Dassl writes them, so upstream log parsers keep working. Non-zero ranks log nothing."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    if rank != 0:
        logger.addHandler(logging.NullHandler())
        return logger
    handlers = [logging.StreamHandler(sys.stdout)]
    if output:
        fpath = output if output.endswith((".txt", ".log")) else os.path.join(output, "log.txt")
        mkdir_if_missing(os.path.dirname(os.path.abspath(fpath)))
        handlers.append(LogFileHandler(fpath))  # appends on resume (Dassl renames the old log)
    for h in handlers:
        h.setFormatter(_Formatter(_LOG_FORMAT))
        logger.addHandler(h)
    return logger


def get_logger(name="cpt"):
    return logging.getLogger(name)


def versions():
    """python, torch, numpy and (when importable) open_clip versions, for ``results.json``."""
    import torch

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__}
    with contextlib.suppress(Exception):
        import open_clip

        out["open_clip"] = open_clip.__version__
    return out


def collect_env_info():
    """The log's system-info block."""
    import torch

    v = versions()
    lines = [f"Python: {v['python']}", f"PyTorch: {v['torch']}",
             f"CUDA available: {torch.cuda.is_available()}"]
    return "\n".join(lines + ([f"open_clip: {v['open_clip']}"] if "open_clip" in v else []))


class AverageMeter:
    def __init__(self, ema=False):
        self.ema = ema
        self.reset()

    def reset(self):
        self.val = self.avg = self.sum = self.count = 0

    def update(self, val, n=1):
        if hasattr(val, "item"):
            val = val.item()
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.avg * 0.9 + self.val * 0.1 if self.ema else self.sum / self.count


class MetricMeter:
    def __init__(self, delimiter=" "):
        self.meters = defaultdict(AverageMeter)
        self.delimiter = delimiter

    def update(self, input_dict):
        if input_dict is not None and not isinstance(input_dict, dict):
            raise TypeError("Input to MetricMeter.update() must be a dictionary")
        for k, v in (input_dict or {}).items():
            self.meters[k].update(v)

    def __str__(self):
        return self.delimiter.join(f"{n} {m.val:.4f} ({m.avg:.4f})" for n, m in self.meters.items())


def count_num_param(model=None, params=None):
    return sum(p.numel() for p in (model.parameters() if model is not None else params))
