"""What every benchmark module needs: layout errors, paths, the cache, image checks, list readers.

Conventions
- Labels as ``engine.data.datasets`` says; multi-label vectors are ``np.int8``, converted from the
  source encodings where they are read (VOC's 1/-1/0, COCO's instance lists, NUS-WIDE's 0/1 files).
- Anything this package writes (built splits, parsed annotations) goes under
  ``<CACHE_DIR>/datasets/<Name>-<hash of the dataset folder>/``, never under ``DATASET.ROOT``.
- Building a dataset reads lists and annotations only; images are opened by the data loader
  (``engine.utils.read_image`` names a missing or corrupt file). Image existence is checked cheaply:
  every entry of a list with at most ``FULL_CHECK_LIMIT`` entries, else ``SAMPLE_SIZE`` evenly spaced
  entries (first and last included); when one is missing, the whole list is scanned to report the
  count and the first few missing paths.
"""
import contextlib
import hashlib
import json
import os
import textwrap

import numpy as np

from ..calibration.fileio import atomic_write_bytes
from ..engine.config import resolve_cache_dir
from ..engine.data.datasets import DatasetBase, class_split_indices, subsample_classes
from ..engine.utils import get_logger

FULL_CHECK_LIMIT = 20000
SAMPLE_SIZE = 1000


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder, list, split file or image is missing or malformed (the message names the
    dataset, the path looked at and the expected layout)."""


def fail(name, problem, layout=None):
    msg = f"{name}: {problem}"
    if layout:
        msg += "\nExpected layout under DATASET.ROOT (--root):\n" + textwrap.indent(layout.strip("\n"), "  ")
    raise DatasetLayoutError(msg)


def preview(paths, k=5):
    shown = ", ".join(str(p) for p in paths[:k])
    return shown + (", ..." if len(paths) > k else "")


class Benchmark(DatasetBase):
    """A benchmark under ``DATASET.ROOT/<dataset_dir>``; the registry name is the class name. A subclass
    sets ``dataset_dir`` and ``LAYOUT`` (the expected tree, shown in every layout error) and implements
    ``load(cfg, root, ddir)``, returning the ``DatasetBase`` kwargs."""

    LAYOUT = ""
    NAME = property(lambda self: type(self).__name__)

    def __init__(self, cfg):
        root = cfg.DATASET.ROOT
        if not root:
            self.fail("DATASET.ROOT is empty; pass --root pointing at the folder that holds the datasets")
        self.root = root = os.path.abspath(os.path.expanduser(root))
        if not os.path.isdir(root):
            self.fail(f"dataset root {root} does not exist")
        ddir = self.require_dir(os.path.join(root, self.dataset_dir), "dataset folder")
        super().__init__(**self.load(cfg, root, ddir))

    def load(self, cfg, root, ddir):
        raise NotImplementedError

    def fail(self, problem):
        fail(self.NAME, problem, self.LAYOUT)

    def require_dir(self, path, what="folder"):
        if not os.path.isdir(path):
            self.fail(f"missing {what}: {path}")
        return path

    def require_file(self, path, what="file"):
        if not os.path.isfile(path):
            self.fail(f"missing {what}: {path}")
        return path

    def checked(self, cfg, splits, source):
        """``check_files_exist`` with ``DATASET.SKIP_MISSING_IMAGES``."""
        return check_files_exist(splits, self.NAME, source, bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False)))


def first_existing(paths):
    return next((p for p in paths if os.path.exists(p)), None)


def dataset_cache_dir(cfg, name, dataset_dir):
    """``<CACHE_DIR>/datasets/<Name>-<sha1(abs dataset folder)[:10]>`` (not created here)."""
    digest = hashlib.sha1(os.path.abspath(dataset_dir).encode("utf-8")).hexdigest()[:10]
    return os.path.join(resolve_cache_dir(cfg), "datasets", f"{name}-{digest}")


def cached_parse(cfg, name, dataset_dir, key, sources, parse):
    """``parse()`` (JSON-serialisable result) cached in the dataset's cache folder, keyed by the
    absolute path, size and mtime of each of ``sources``."""
    path = os.path.join(dataset_cache_dir(cfg, name, dataset_dir), f"{key}.json")
    stamp = [[os.path.abspath(p), os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in sources]
    with contextlib.suppress(OSError, ValueError):  # absent or unreadable: parsed again
        with open(path, "r") as f:
            blob = json.load(f)
        if blob.get("sources") == stamp:
            return blob["data"]
    data = parse()
    atomic_write_bytes(json.dumps({"sources": stamp, "data": data}, separators=(",", ":")).encode("utf-8"), path)
    return data


def verification_indices(n):
    """Indices of a list of ``n`` entries whose files are checked (see module docstring)."""
    if n <= FULL_CHECK_LIMIT:
        return range(n)
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, SAMPLE_SIZE)})


def check_files_exist(splits, name, source, skip_missing=False):
    """``splits`` (split name -> Datum list) after checking that their images exist (see the module
    docstring); a missing one is dropped with ``skip_missing``, else fails with the count and a few paths."""
    out = {}
    for split, items in splits.items():
        if skip_missing:
            keep = [x for x in items if os.path.exists(x.impath)]
            if len(keep) < len(items):
                get_logger().warning(f"{name}: dropped {len(items) - len(keep)} {split} entries whose image "
                                     f"is missing (DATASET.SKIP_MISSING_IMAGES)")
            out[split] = keep
            continue
        if all(os.path.exists(items[i].impath) for i in verification_indices(len(items))):
            out[split] = items
            continue
        missing = [x.impath for x in items if not os.path.exists(x.impath)]
        fail(name, f"{source} lists {len(missing)} {split} image(s) (of {len(items)}) that do not exist, "
                   f"e.g. {preview(missing)}")
    return out


def read_lines(path):
    """Non-empty, stripped lines (CRLF tolerated)."""
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return [ln.strip() for ln in f if ln.strip()]


def finish_test_only(cfg, test, classnames):
    """Test-only datasets: no few-shot; base/new applies to the test set."""
    test, classnames = subsample_classes(test, subsample=cfg.DATASET.SUBSAMPLE_CLASSES, classnames=classnames)
    return dict(train_x=[], val=[], test=test, classnames=classnames)


def lt_groups(train, subsample):
    """:func:`lt_groups_of_counts` of the positives per class of the full training set (before
    few-shot), for the classes kept by ``subsample``."""
    labels = np.stack([np.asarray(x.label) for x in train])
    counts = (labels == 1).sum(0)
    return lt_groups_of_counts(counts, class_split_indices(labels.shape[1], subsample))


def lt_groups_of_counts(counts, kept):
    """head (>= 100 training images) / medium (20-99) / tail (< 20) indices 0..len(kept)-1 of the
    classes ``kept``, from ``counts`` (positives per class of the full training set)."""
    groups = {"head": [], "medium": [], "tail": []}
    for new, old in enumerate(kept):
        c = counts[old]
        groups["head" if c >= 100 else "medium" if c >= 20 else "tail"].append(new)
    return groups
