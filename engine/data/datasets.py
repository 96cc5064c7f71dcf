"""Dataset records and the dataset registry (Dassl's ``Datum``/``DatasetBase``), few-shot and base/new.

Label encoding: single-label datasets use an int in ``0..num_classes-1``; multi-label datasets a
multi-hot vector (list/tuple/np.ndarray of length ``num_classes``) with 1 = positive, 0 = negative,
-1 = unknown/ignored. ``classnames`` always comes from the dataset's full class list (index = label),
never from the labels that happen to occur in ``train_x``.
"""
import contextlib
import gc
import hashlib
import json
import math
import os
import random
from collections import defaultdict

import numpy as np

from ...calibration.registry import Registry
from ..config import SUBSAMPLE_CHOICES

DATASET_REGISTRY = Registry("DATASET")


@contextlib.contextmanager
def paused_gc():
    """Pause Python's cyclic GC while building millions of small acyclic objects (2-3x faster)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_dataset(cfg):
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)


def _is_multilabel(label):
    return not isinstance(label, (int, np.integer))


class Datum:
    """One sample: image path, label (int or multi-hot), domain, class name."""

    __slots__ = ("impath", "label", "domain", "classname")

    def __init__(self, impath="", label=0, domain=0, classname=""):
        assert isinstance(impath, str)
        self.impath = impath
        self.label = label
        self.domain = domain
        self.classname = classname

    @property
    def is_multilabel(self):
        return _is_multilabel(self.label)

    def __repr__(self):
        return f"Datum({self.impath!r}, label={self.label!r}, classname={self.classname!r})"


class DatasetBase:
    """A dataset: ``train_x``, ``train_u``, ``val``, ``test`` lists of ``Datum``; ``classnames`` (index =
    label) should be passed by every loader (omitted: derived from all splits together). Optional
    ``groups``: group name (e.g. "base", "tail") -> class indices, for multi-label breakdowns."""

    dataset_dir = ""
    domains = []

    def __init__(self, train_x=None, train_u=None, val=None, test=None, classnames=None, groups=None):
        self.train_x = train_x or []
        self.train_u = train_u
        self.val = val or []
        self.test = test or []
        if classnames is None:
            classnames = self.get_classnames_from(self.train_x + self.val + self.test)
        self.classnames = list(classnames)
        self.num_classes = len(self.classnames)
        self.lab2cname = {i: c for i, c in enumerate(self.classnames)}
        self.groups = groups or {}

    @property
    def is_multilabel(self):
        return next((split[0].is_multilabel for split in (self.train_x, self.test, self.val) if split), False)

    @staticmethod
    def get_classnames_from(data_source):
        """Class names from int-labelled items, ordered by label (gaps -> "")."""
        names = {int(x.label): x.classname for x in data_source if not _is_multilabel(x.label)}
        return [names.get(i, "") for i in range(max(names) + 1)] if names else []

    # Dassl compatibility
    @staticmethod
    def get_num_classes(data_source):
        return len(DatasetBase.get_classnames_from(data_source))

    @staticmethod
    def get_lab2cname(data_source):
        names = DatasetBase.get_classnames_from(data_source)
        return {i: c for i, c in enumerate(names)}, names

    def generate_fewshot_dataset(self, *data_sources, num_shots=-1, repeat=False, seed=None):
        """Dassl's few-shot draw (:func:`draw_per_class`) from each source; ``seed`` None: Python's
        global RNG (which ``set_random_seed`` seeds), as upstream does."""
        return generate_fewshot(*data_sources, num_shots=num_shots, repeat=repeat, seed=seed)

    def split_dataset_by_label(self, data_source):
        return split_by_label(data_source)


def split_by_label(data_source):
    """Label -> items, labels in order of first appearance (Dassl's tracker)."""
    out = defaultdict(list)
    for item in data_source:
        out[item.label].append(item)
    return out


def generate_fewshot(*data_sources, num_shots=-1, repeat=False, seed=None):
    """``num_shots`` per class from each source (``< 1``: the sources unchanged)."""
    if num_shots is None or num_shots < 1:
        return data_sources[0] if len(data_sources) == 1 else list(data_sources)
    rng = random.Random(seed) if seed is not None else random
    output = [generate_fewshot_multilabel(d, num_shots, rng) if d and d[0].is_multilabel
              else draw_per_class(d, num_shots, rng, repeat)[0] for d in data_sources]
    return output[0] if len(output) == 1 else output


def draw_per_class(items, num_shots, rng, repeat=False):
    """Dassl's per-class draw on single-label ``items`` with generator ``rng``: classes in order of
    first appearance, ``rng.sample(group, num_shots)`` each, a class with fewer items kept whole
    (``rng.choices`` with ``repeat``). Returns ``(sampled items, short)``, ``short`` listing
    ``(label, classname, count)`` of the classes with fewer than ``num_shots`` items."""
    out, short = [], []
    for label, group in split_by_label(items).items():
        if len(group) >= num_shots:
            out.extend(rng.sample(group, num_shots))
        else:
            short.append((label, group[0].classname, len(group)))
            out.extend(rng.choices(group, k=num_shots) if repeat else group)
    return out, short


def generate_fewshot_multilabel(data_source, num_shots, rng):
    """K images per class for multi-hot data: visit classes in index order; for each, count the images
    already selected that are positive for it and add randomly chosen unselected positives until it has
    ``num_shots`` (or runs out). An image with several positive classes counts toward each of them, so
    rare classes are not starved and the set is at most ``C * K`` images."""
    labels = np.array([np.asarray(item.label) for item in data_source])
    selected = np.zeros(len(data_source), dtype=bool)
    for c in range(labels.shape[1]):
        pos = np.flatnonzero(labels[:, c] == 1)
        need = num_shots - int(selected[pos].sum())
        if need > 0:
            candidates = [int(i) for i in pos if not selected[i]]
            selected[rng.sample(candidates, min(need, len(candidates)))] = True
    return [data_source[i] for i in np.flatnonzero(selected)]


def subsample_classes(*args, subsample="all", classnames=None):
    """Base/new split of CoOp: sort labels, base = first ceil(n/2), new = the rest. Single-label items
    are relabelled to 0..k-1 (new classes start at 0), multi-hot labels cut to the chosen columns.
    Returns the datasets and, when ``classnames`` (the full list) is given, the subset's names last."""
    assert subsample in SUBSAMPLE_CHOICES, f"SUBSAMPLE_CLASSES must be all/base/new, got {subsample!r}"
    if subsample == "all":
        return (*args, classnames) if classnames is not None else (args if len(args) > 1 else args[0])
    n = len(classnames) if classnames is not None else max(item.label for d in args for item in d) + 1
    selected = class_split_indices(n, subsample)
    relabeler = {y: i for i, y in enumerate(selected)}

    def cut(x):  # a multi-label image without a positive in the subset stays (its negatives count)
        label = np.asarray(x.label)[selected] if x.is_multilabel else relabeler[x.label]
        return Datum(x.impath, label, x.domain, x.classname)

    output = [[cut(x) for x in dataset if x.is_multilabel or x.label in relabeler] for dataset in args]
    if classnames is not None:
        output.append([classnames[i] for i in selected])
    return tuple(output) if len(output) > 1 else output[0]


def class_split_indices(n, subsample):
    """Indices of the classes kept by ``subsample`` for ``n`` classes (ceil rule)."""
    m = math.ceil(n / 2)
    return {"all": list(range(n)), "base": list(range(m)), "new": list(range(m, n))}[subsample]


def read_split(filepath, path_prefix, with_names=False):
    """``train, val, test`` Datum lists (and ``{label: classname}`` with ``with_names``) of a CoOp split
    file ``{"train"|"val"|"test": [[relpath, label, classname], ...]}``; paths are joined to
    ``path_prefix`` by string concatenation (about 3x as fast as ``os.path.join`` on ImageNet-sized
    files; the GC is paused). A malformed file raises ``ValueError`` naming it."""
    from ..utils import read_json

    base = os.path.join(path_prefix, "")
    with paused_gc():
        try:
            blob = read_json(filepath)
            splits, pairs = [], set()
            for key in ("train", "val", "test"):
                rows = blob[key]
                pairs.update((y, c) for _, y, c in rows)
                splits.append([Datum(p if p[:1] == "/" else base + p, y, 0, c) for p, y, c in rows])
        except (KeyError, ValueError, TypeError, AssertionError) as e:
            raise ValueError(f"split file {filepath} is malformed ({type(e).__name__}: {e}); expected "
                             '{"train"|"val"|"test": [[relative_path, label, classname], ...]}') from None
    names = {}
    for y, c in sorted(pairs, key=repr):
        if not isinstance(y, int) or isinstance(y, bool):
            raise ValueError(f"split file {filepath}: labels must be integers, found {y!r}")
        if names.setdefault(y, c) != c:
            raise ValueError(f"split file {filepath}: label {y} has two class names ({names[y]!r} and {c!r})")
    return (*splits, names) if with_names else tuple(splits)


def save_split(train, val, test, filepath, path_prefix):
    """Write a CoOp split file (compact JSON, atomic) with paths relative to ``path_prefix``."""
    from ...calibration.fileio import atomic_write_bytes

    base = os.path.join(path_prefix, "")

    def convert(items):
        return [[x.impath[len(base):] if x.impath.startswith(base) else os.path.relpath(x.impath, path_prefix),
                 int(x.label), x.classname] for x in items]

    blob = {"train": convert(train), "val": convert(val), "test": convert(test)}
    atomic_write_bytes(json.dumps(blob, separators=(",", ":")).encode("utf-8"), filepath)


def apply_fewshot_and_subsample(cfg, dataset_name, train, val, test, classnames, dataset_dir=None,
                                draw_val=True, imagenet_image_dir=None):
    """CoOp's protocol, shared by every dataset module: few-shot first (single-label: Dassl's draw,
    ``engine.data.fewshot``; multi-label: :func:`generate_fewshot_multilabel`, indices cached in
    ``<cache>/split_fewshot/<dataset>/shot_<K>-seed_<S>-<tag>.json``), then base/new
    (:func:`subsample_classes`). Returns ``(train, val, test, classnames)``."""
    num_shots = cfg.DATASET.NUM_SHOTS
    if num_shots and num_shots >= 1:
        if train and not train[0].is_multilabel:
            from .fewshot import fewshot_like_dassl

            train, val = fewshot_like_dassl(cfg, dataset_name, train, val, dataset_dir=dataset_dir,
                                            draw_val=draw_val, imagenet_image_dir=imagenet_image_dir)
        else:
            train, val = _fewshot_multilabel_cached(cfg, dataset_name, train, val, num_shots)
    return subsample_classes(train, val, test, subsample=cfg.DATASET.SUBSAMPLE_CLASSES, classnames=classnames)


def _fewshot_multilabel_cached(cfg, dataset_name, train, val, num_shots):
    from ..config import resolve_cache_dir
    from ..utils import read_json, write_json

    seed = cfg.SEED if cfg.SEED is not None and cfg.SEED >= 0 else None
    # the key includes a digest of the split (every path and label, in order): a changed split is a miss
    h = hashlib.sha1()
    for items in (train, val):
        h.update(b"\2")
        for x in items:
            h.update(x.impath.encode("utf-8", "surrogateescape") + b"\0" + np.asarray(x.label, np.int8).tobytes())
    tag = h.hexdigest()[:10]
    path = os.path.join(resolve_cache_dir(cfg), "split_fewshot", dataset_name,
                        f"shot_{num_shots}-seed_{cfg.SEED}-{tag}.json")
    cached = read_json(path) if os.path.isfile(path) else None
    if cached is not None and cached.get("n_train") == len(train) and cached.get("n_val") == len(val):
        return [train[i] for i in cached["train"]], [val[i] for i in cached["val"]]
    index_of = {id(x): i for i, x in enumerate(train)}
    index_of_val = {id(x): i for i, x in enumerate(val)}
    rng = random.Random(seed)
    new_train = generate_fewshot(train, num_shots=num_shots, seed=rng.randrange(2**31))
    new_val = generate_fewshot(val, num_shots=min(num_shots, 4), seed=rng.randrange(2**31)) if val else []
    if seed is not None:
        write_json({"n_train": len(train), "n_val": len(val),
                    "train": [index_of[id(x)] for x in new_train],
                    "val": [index_of_val[id(x)] for x in new_val]}, path)
    return new_train, new_val
