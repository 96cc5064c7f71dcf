"""Single-label benchmarks: CoOp split files, building a split when none exists, finishing.

A split file ``split_zhou_<Name>.json`` (``engine.data.read_split``; paths relative to the image
folder) is looked for in the dataset folder, then in the cache; a built split is saved to the cache with
``split_zhou_<Name>.json.sources``, the stamps of what the builder read (a folder: the digest of its class
folders and image names; a file: size and mtime). A cached split is used only while every stamp is
unchanged; otherwise it is rebuilt, unless images it lists are gone (that fails, naming the file to delete).
"""
import hashlib
import json
import os
import random

from ..calibration.fileio import atomic_write_bytes
from ..engine.data.datasets import Datum, apply_fewshot_and_subsample, paused_gc, read_split, save_split, split_by_label
from ..engine.utils import get_logger, listdir_nohidden
from .common import Benchmark, check_files_exist, dataset_cache_dir, fail, preview

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def split_filename(name):
    return f"split_zhou_{name}.json"


def cached_split_file(cfg, name, dataset_dir):
    return os.path.join(dataset_cache_dir(cfg, name, dataset_dir), split_filename(name))


def listing_digest(folder):
    """SHA-256 of what the folder builders read of ``folder``: its sorted class subfolders, each with its
    sorted image file names (names only, no file is opened: an ImageNet-sized tree costs one listing)."""
    h = hashlib.sha256()
    for c in class_subfolders(folder):
        names = [c] + list_images(os.path.join(folder, c))
        h.update("\0".join(names).encode("utf-8", "surrogateescape") + b"\1")
    return h.hexdigest()


def source_stamp(path):
    """What a built split records of one source: a folder's :func:`listing_digest`, a file's size and mtime."""
    if os.path.isdir(path):
        return "listing " + listing_digest(path)
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"file {st.st_size} {st.st_mtime_ns}"


def stamp_sources(sources, *paths):
    """Add the current stamp of each of ``paths`` to ``sources`` (``{absolute path: stamp}``); a builder
    stamps before it reads, so a change meanwhile makes the cached split stale, never wrongly fresh."""
    for p in paths:
        sources[os.path.abspath(p)] = source_stamp(p)
    return sources


def describe_sources(paths, dataset_dir):
    """``images/, annotations/trainval.txt``: ``paths`` relative to the dataset folder (folders with a /)."""
    shown = [os.path.relpath(p, dataset_dir) + ("/" if os.path.isdir(p) else "") for p in paths]
    return ", ".join(shown) or "nothing"


def stale_reason(path, dataset_dir):
    """Why the cached split ``path`` must be rebuilt ("" when every source it records is unchanged)."""
    try:
        with open(path + ".sources") as f:
            record = json.load(f)
        st = os.stat(path)
        mine, sources = record["split"] == [st.st_size, st.st_mtime_ns], dict(record["sources"])
    except (OSError, ValueError, KeyError, TypeError):
        return "it records no sources (cached before splits were keyed by them)"
    if not mine:
        return "its record of sources belongs to another write of it"
    changed = [p for p, stamp in sources.items() if source_stamp(p) != stamp]
    return f"{describe_sources(changed, dataset_dir)} changed since it was built" if changed else ""


def save_split_to_cache(cfg, name, dataset_dir, image_dir, train, val, test, sources=None):
    """Write a CoOp split file into the dataset's cache folder and, beside it, the stamps of its
    ``sources`` (``{absolute path: stamp}``); returns its path."""
    path = cached_split_file(cfg, name, dataset_dir)
    save_split(train, val, test, path, image_dir)
    st = os.stat(path)
    record = {"split": [st.st_size, st.st_mtime_ns], "sources": dict(sources or {})}
    atomic_write_bytes(json.dumps(record, indent=1).encode("utf-8"), path + ".sources")
    return path


def _labels_0_to_c(names, name, source):
    """Class names (index = label) of ``{label: classname}``; labels must be 0..C-1 without gaps."""
    if not names:
        fail(name, f"{source} holds no items")
    gaps = [y for y in range(max(names) + 1) if y not in names]
    if min(names) < 0 or gaps:
        fail(name, f"{source}: labels must be 0..C-1 without gaps; missing labels {preview(gaps)}, "
                   f"smallest {min(names)}")
    return [names[y] for y in range(len(names))]


def classnames_from_items(items, name, source):
    """Class names (index = label) from single-label items; one name per label."""
    names = {}
    for x in items:
        y = int(x.label)
        old = names.setdefault(y, x.classname)
        if old != x.classname:
            fail(name, f"{source}: label {y} has two class names ({old!r} and {x.classname!r})")
    return _labels_0_to_c(names, name, source)


def load_split_file(cfg, path, image_dir, name, classnames=None):
    """``train, val, test, classnames`` of a CoOp split file, labels validated, images checked cheaply.
    ``classnames``: the dataset's full class list (labels must index it), else derived (labels 0..C-1)."""
    try:
        train, val, test, names = read_split(path, image_dir, with_names=True)
    except ValueError as e:
        fail(name, str(e))
    if classnames is None:
        classnames = _labels_0_to_c(names, name, f"split file {path}")
    elif not names:
        fail(name, f"split file {path} holds no items")
    else:
        bad = sorted(y for y in names if not 0 <= y < len(classnames))
        if bad:
            fail(name, f"split file {path}: labels outside 0..{len(classnames) - 1}: {preview(bad)}")
    s = check_files_exist({"train": train, "val": val, "test": test}, name, f"split file {path}",
                          bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False)))
    return s["train"], s["val"], s["test"], classnames


def split_or_build(cfg, name, dataset_dir, image_dir, build, classnames=None, sources=None):
    """The split file in the dataset folder when present, else the cached one while the sources it
    records are unchanged, else ``build()`` (``train, val, test``) cached with ``sources`` (the stamps
    of what it read, which ``build`` adds to the dict while it runs). A stale cached split that lists
    images which are gone fails (delete it to rebuild) unless ``DATASET.SKIP_MISSING_IMAGES``."""
    own = os.path.join(dataset_dir, split_filename(name))
    if os.path.exists(own):
        return load_split_file(cfg, own, image_dir, name, classnames)
    log = get_logger()
    path = cached_split_file(cfg, name, dataset_dir)
    reason = stale_reason(path, dataset_dir) if os.path.exists(path) else ""
    if os.path.exists(path) and not reason:
        log.info(f"{name}: split read from the cache {path} (its sources are unchanged)")
        return load_split_file(cfg, path, image_dir, name, classnames)
    if reason and not cfg.DATASET.get("SKIP_MISSING_IMAGES", False):
        try:
            old = dict(zip(("train", "val", "test"), read_split(path, image_dir)))
        except ValueError:  # unreadable: rebuilt
            old = {}
        check_files_exist(old, name, f"cached split file {path} ({reason}; delete it to build the split again)")
    sources = {} if sources is None else sources
    train, val, test = build()
    if classnames is None:
        classnames = classnames_from_items(train + val + test, name, "the built split")
    save_split_to_cache(cfg, name, dataset_dir, image_dir, train, val, test, sources)
    log.info(f"{name}: split built from {describe_sources(sources, dataset_dir)} and cached in {path}"
             + (f" (the cached one was stale: {reason})" if reason else ""))
    return train, val, test, classnames


def list_images(folder):
    return sorted(f for f in listdir_nohidden(folder) if f.lower().endswith(IMAGE_EXTENSIONS))


def class_subfolders(image_dir):
    return sorted(f for f in listdir_nohidden(image_dir) if os.path.isdir(os.path.join(image_dir, f)))


def split_per_class(groups, name, layout, p_trn=0.5, p_val=0.2, seed=0):
    """CoOp's per-class split of ``groups`` (``[(label, classname, paths, where), ...]``):
    per class ``n_train = round(n * p_trn)``, ``n_val = round(n * p_val)``, the rest is test, the
    paths shuffled with ``random.Random(seed)``; each split needs one image per class."""
    rng = random.Random(seed)
    train, val, test = [], [], []
    for label, cname, paths, where in groups:
        rng.shuffle(paths)
        n = len(paths)
        n_train, n_val = round(n * p_trn), round(n * p_val)
        if n_train < 1 or n_val < 1 or n - n_train - n_val < 1:
            fail(name, f"{where} has {n} images; building a {p_trn:.0%}/{p_val:.0%}/"
                       f"{1 - p_trn - p_val:.0%} split needs at least one image per split", layout)
        train += [Datum(p, label, 0, cname) for p in paths[:n_train]]
        val += [Datum(p, label, 0, cname) for p in paths[n_train:n_train + n_val]]
        test += [Datum(p, label, 0, cname) for p in paths[n_train + n_val:]]
    return train, val, test


def read_and_split_folders(image_dir, name, layout, ignored=(), new_cnames=None):
    """:func:`split_per_class` of ``image_dir/<class>/<image>``; labels follow the sorted folder names
    (minus ``ignored``), ``new_cnames`` renames classes."""
    categories = [c for c in class_subfolders(image_dir) if c not in ignored]
    if not categories:
        fail(name, f"no class folders in {image_dir}", layout)
    groups = []
    for label, category in enumerate(categories):
        folder = os.path.join(image_dir, category)
        images = [os.path.join(folder, f) for f in list_images(folder)]
        if not images:
            fail(name, f"class folder {folder} holds no images", layout)
        groups.append((label, (new_cnames or {}).get(category, category), images, f"class folder {folder}"))
    return split_per_class(groups, name, layout)


def split_trainval(trainval, p_val=0.2, seed=0):
    """CoOp's train/val split of an official train set: per class, ``round(p_val * n)`` (at least 1) to val."""
    rng = random.Random(seed)
    by_label = split_by_label(trainval)
    train, val = [], []
    for label in sorted(by_label):
        items = by_label[label]
        rng.shuffle(items)
        n_val = max(1, round(p_val * len(items))) if len(items) > 1 else 0
        val += items[:n_val]
        train += items[n_val:]
    return train, val


def list_class_folders(image_dir, folders, classnames, name, layout):
    """Items of ``image_dir/<folder>/*``, label = the folder's index in ``folders``; every folder
    must exist and hold at least one image."""
    missing = [f for f in folders if not os.path.isdir(os.path.join(image_dir, f))]
    if missing:
        fail(name, f"{len(missing)} class folder(s) missing in {image_dir}: {preview(missing)}", layout)
    items = []
    with paused_gc():
        for label, folder in enumerate(folders):
            d = os.path.join(image_dir, folder)
            files = list_images(d)
            if not files:
                fail(name, f"class folder {d} holds no images", layout)
            items += [Datum(os.path.join(d, f), label, 0, classnames[label]) for f in files]
    return items


def finish_single_label(cfg, name, train, val, test, classnames, dataset_dir=None):
    """Few-shot (Dassl's draw, or upstream's pickle in ``dataset_dir/split_fewshot/``) + base/new;
    returns the kwargs for ``DatasetBase.__init__``."""
    with paused_gc():
        train, val, test, classnames = apply_fewshot_and_subsample(cfg, name, train, val, test, classnames,
                                                                   dataset_dir=dataset_dir)
    return dict(train_x=train, val=val, test=test, classnames=classnames)


class SplitBenchmark(Benchmark):
    """A single-label benchmark with CoOp's protocol: ``split_zhou_<Name>.json`` when present,
    else ``build(cfg, ddir, image_dir)`` (train, val, test; saved to the cache); then few-shot
    and base/new. ``image_dir`` is ``<dataset folder>/<image_subdir>``."""

    image_subdir = ""

    def load(self, cfg, root, ddir):
        image_dir = os.path.join(ddir, self.image_subdir) if self.image_subdir else ddir
        self.split_sources = {}  # need() stamps what build() reads: the key of the cached split
        train, val, test, classnames = split_or_build(cfg, self.NAME, ddir, image_dir, lambda: self.build(
            cfg, ddir, image_dir), sources=self.split_sources)
        return finish_single_label(cfg, self.NAME, train, val, test, classnames, dataset_dir=ddir)

    def build(self, cfg, ddir, image_dir):
        raise NotImplementedError

    def need(self, cfg, ddir, *paths):
        """Fail (saying that no split file exists either) unless every one of ``paths`` exists; stamp
        them as the sources of the split being built (:func:`stamp_sources`)."""
        for p in paths:
            if not os.path.exists(p):
                self.fail(f"no split file {split_filename(self.NAME)} in {ddir} (nor a built one in "
                          f"{dataset_cache_dir(cfg, self.NAME, ddir)}), and the split cannot be built "
                          f"because {p} is missing")
        stamp_sources(self.split_sources, *paths)
        return paths


class FolderBenchmark(SplitBenchmark):
    """Built split: CoOp's 50/20/30 per-class split of ``image_dir/<class>/`` (``IGNORED``
    folders left out, ``NEW_CNAMES`` renaming classes)."""

    IGNORED = ()
    NEW_CNAMES = None

    def build(self, cfg, ddir, image_dir):
        self.need(cfg, ddir, image_dir)
        return read_and_split_folders(image_dir, self.NAME, self.LAYOUT, self.IGNORED, self.NEW_CNAMES)
