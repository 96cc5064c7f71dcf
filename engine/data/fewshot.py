"""Few-shot draws identical to Dassl's (``DatasetBase.generate_fewshot_dataset``) for single-label data
(README, *Same as upstream*).

Upstream seeds Python's ``random`` just before building the dataset, groups the items by label in
order of first appearance, ``random.sample``s K per class (a class with fewer keeps all), draws train
(``K = NUM_SHOTS``) and then val (``min(NUM_SHOTS, 4)``; ImageNet: none) from the same generator. A
private ``random.Random(SEED)`` replays that sequence, so ``--seed k`` selects upstream's images;
ImageNet's list is in upstream's order (sorted class folders, each in ``os.listdir`` order, or
``imagenet/preprocessed.pkl``). Upstream's cached draw ``<dataset>/split_fewshot/shot_{K}-seed_{S}.pkl``
is read instead when present (items matched by path below the dataset folder, labels must agree; only
Dassl ``Datum`` records and plain containers are unpickled). Nothing is written into the dataset folder.
"""
import os
import pickle
import random
from collections import OrderedDict

from ..utils import get_logger
from .datasets import draw_per_class

VAL_SHOTS = 4  # CoOp: validation set gets min(NUM_SHOTS, 4) per class
_listdir = os.listdir  # the folder listing upstream's ImageNet order comes from (tests replace it)


class UpstreamFileError(ValueError):
    """An upstream pickle cannot be read or does not match the dataset's split."""


class _UpstreamDatum:
    """Stand-in for ``dassl.data.datasets.base_dataset.Datum`` when unpickling."""

    def __setstate__(self, state):
        parts = state if isinstance(state, tuple) else (state,)  # (dict, slots dict) with __slots__
        for part in parts:
            self.__dict__.update(part or {})


_ALLOWED = {("collections", "OrderedDict"), ("collections", "defaultdict"), ("builtins", "list"),
            ("builtins", "dict"), ("copyreg", "_reconstructor"), ("builtins", "object"),
            ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype")}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if name == "Datum" and (module.startswith("dassl.") or module.startswith("engine.")):
            return _UpstreamDatum
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only Dassl Datum records are expected)")


def load_upstream_pickle(path):
    """The dict stored in an upstream pickle (``{"train": [Datum, ...], ...}``)."""
    try:
        with open(path, "rb") as f:
            blob = _Unpickler(f).load()
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as e:
        raise UpstreamFileError(f"cannot read upstream file {path}: {type(e).__name__}: {e}") from e
    if not isinstance(blob, dict) or not isinstance(blob.get("train"), list):
        raise UpstreamFileError(f"upstream file {path}: expected a dict with a 'train' list of Dassl Datum, "
                                f"got {type(blob).__name__}")
    return blob


def _parts(path):
    return tuple(p for p in path.replace("\\", "/").split("/") if p)


def match_upstream_items(records, ours, dataset_dir, path, key):
    """Map upstream ``records`` (Datum stand-ins) to ``ours`` by path relative to ``dataset_dir``.

    Upstream stores absolute paths from the machine that wrote the file; the last components
    (as many as an item of ours has below ``dataset_dir``) identify the image.
    """
    by_rel = {_parts(os.path.relpath(x.impath, dataset_dir)): x for x in ours}
    depths = sorted({len(rel) for rel in by_rel}, reverse=True)
    out, missing = [], []
    for r in records:
        impath = getattr(r, "_impath", None)
        if not isinstance(impath, str):
            raise UpstreamFileError(f"upstream file {path}: '{key}' holds a {type(r).__name__} without an image path")
        comps = _parts(impath)
        hit = next((by_rel[comps[-d:]] for d in depths if comps[-d:] in by_rel), None)
        if hit is None:
            missing.append(impath)
            continue
        label = getattr(r, "_label", None)
        if int(label) != int(hit.label):
            raise UpstreamFileError(f"upstream file {path}: {impath} has label {label} there but {hit.label} in this "
                                    f"dataset's split (was the file drawn from another split file?)")
        out.append(hit)
    if missing:
        raise UpstreamFileError(f"upstream file {path}: {len(missing)} '{key}' image(s) are not in this dataset's "
                                f"{key} list, e.g. {missing[:3]}")
    return out


def upstream_fewshot_file(dataset_dir, num_shots, seed):
    return os.path.join(dataset_dir, "split_fewshot", f"shot_{num_shots}-seed_{seed}.pkl")


def imagenet_upstream_order(train, dataset_dir, image_dir):
    """``(train reordered as upstream's ImageNet list, source description)``: classes by sorted folder
    name, images in ``imagenet/preprocessed.pkl`` order when present, else in ``os.listdir`` order."""
    pre = os.path.join(dataset_dir, "preprocessed.pkl")
    if os.path.isfile(pre):
        blob = load_upstream_pickle(pre)
        return match_upstream_items(blob["train"], train, dataset_dir, pre, "train"), f"the order of {pre}"
    by_folder = OrderedDict()
    for x in train:
        by_folder.setdefault(os.path.dirname(x.impath), []).append(x)
    out = []
    for folder in sorted(by_folder, key=os.path.basename):
        rank = {f: i for i, f in enumerate(f for f in _listdir(folder) if not f.startswith("."))}
        out += sorted(by_folder[folder], key=lambda x: rank.get(os.path.basename(x.impath), len(rank)))
    return out, f"os.listdir order of {image_dir}"


def fewshot_like_dassl(cfg, name, train, val, dataset_dir=None, draw_val=True, imagenet_image_dir=None):
    """``NUM_SHOTS`` per class from ``train`` (and ``min(NUM_SHOTS, 4)`` from ``val`` when
    ``draw_val``), as upstream draws them for ``cfg.SEED``; returns ``(train, val)``.

    ``dataset_dir``: the benchmark's folder (with upstream's ``split_fewshot/``; None: no upstream
    file); ``imagenet_image_dir``: ImageNet's image folder, to draw in upstream's ImageNet order.
    """
    log = get_logger()
    k = int(cfg.DATASET.NUM_SHOTS)
    seed = cfg.SEED
    if dataset_dir is not None and seed is not None and seed >= 0:
        path = upstream_fewshot_file(dataset_dir, k, seed)
        if os.path.isfile(path):
            blob = load_upstream_pickle(path)
            new_train = match_upstream_items(blob["train"], train, dataset_dir, path, "train")
            new_val = (match_upstream_items(blob.get("val") or [], val, dataset_dir, path, "val")
                       if draw_val else val)
            log.info(f"{name}: few-shot split read from upstream file {path} ({len(new_train)} train, "
                     f"{len(new_val) if draw_val else 0} val images)")
            return new_train, new_val
    population = train
    order = "the split's order"
    if imagenet_image_dir is not None:
        population, order = imagenet_upstream_order(train, dataset_dir, imagenet_image_dir)
    rng = random.Random(seed) if seed is not None and seed >= 0 else random.Random()
    new_train, short = draw_per_class(population, k, rng)
    new_val, short_val = draw_per_class(val, min(k, VAL_SHOTS), rng) if draw_val and val else (val, [])
    for label, cname, n in short:
        log.warning(f"{name}: class {cname!r} (label {label}) has {n} training images, fewer than "
                    f"NUM_SHOTS={k}; all {n} are kept (Dassl's rule with repeat=False)")
    for label, cname, n in short_val:
        log.warning(f"{name}: class {cname!r} (label {label}) has {n} validation images, fewer than "
                    f"{min(k, VAL_SHOTS)}; all {n} are kept")
    seeded = f"seed {seed}" if seed is not None and seed >= 0 else "unseeded (SEED < 0)"
    upstream = upstream_fewshot_file(dataset_dir, k, seed) if dataset_dir else "(no dataset folder)"
    log.info(f"{name}: few-shot split drawn with Dassl's rule ({k} shots, {seeded}, from {order}); "
             f"no upstream file {upstream}")
    return new_train, new_val
