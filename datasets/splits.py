"""Single-label benchmarks: CoOp split files, building a split when none exists, finishing.

A split file ``split_zhou_<Name>.json`` (``engine.data.read_split``; paths relative to the image
folder) is looked for in the dataset folder, then in the cache; a built split is saved to the cache.
"""
import os
import random

from cpt.datasets.common import Benchmark, check_files_exist, dataset_cache_dir, fail, first_existing, preview
from cpt.engine.data.datasets import (Datum, apply_fewshot_and_subsample, paused_gc, read_split, save_split,
                                      split_by_label)
from cpt.engine.utils import get_logger, listdir_nohidden

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def split_filename(name):
    return f"split_zhou_{name}.json"


def find_split_file(cfg, name, dataset_dir):
    """The split file in the dataset folder, else the one built earlier in the cache, else None."""
    return first_existing([os.path.join(dataset_dir, split_filename(name)),
                           os.path.join(dataset_cache_dir(cfg, name, dataset_dir), split_filename(name))])


def save_split_to_cache(cfg, name, dataset_dir, image_dir, train, val, test):
    """Write a CoOp split file into the dataset's cache folder; returns its path."""
    path = os.path.join(dataset_cache_dir(cfg, name, dataset_dir), split_filename(name))
    save_split(train, val, test, path, image_dir)
    get_logger().info(f"{name}: built split saved to {path}")
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


def split_or_build(cfg, name, dataset_dir, image_dir, build, classnames=None):
    """The split file when present, else ``build()`` (``train, val, test``), saved to the cache."""
    path = find_split_file(cfg, name, dataset_dir)
    if path is not None:
        return load_split_file(cfg, path, image_dir, name, classnames)
    train, val, test = build()
    if classnames is None:
        classnames = classnames_from_items(train + val + test, name, "the built split")
    save_split_to_cache(cfg, name, dataset_dir, image_dir, train, val, test)
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
        train, val, test, classnames = split_or_build(cfg, self.NAME, ddir, image_dir,
                                                      lambda: self.build(cfg, ddir, image_dir))
        return finish_single_label(cfg, self.NAME, train, val, test, classnames, dataset_dir=ddir)

    def build(self, cfg, ddir, image_dir):
        raise NotImplementedError

    def need(self, cfg, ddir, *paths):
        """Fail (saying that no split file exists either) unless every one of ``paths`` exists."""
        for p in paths:
            if not os.path.exists(p):
                self.fail(f"no split file {split_filename(self.NAME)} in {ddir} (nor a built one in "
                          f"{dataset_cache_dir(cfg, self.NAME, ddir)}), and the split cannot be built "
                          f"because {p} is missing")
        return paths


class FolderBenchmark(SplitBenchmark):
    """Built split: CoOp's 50/20/30 per-class split of ``image_dir/<class>/`` (``IGNORED``
    folders left out, ``NEW_CNAMES`` renaming classes)."""

    IGNORED = ()
    NEW_CNAMES = None

    def build(self, cfg, ddir, image_dir):
        self.need(cfg, ddir, image_dir)
        return read_and_split_folders(image_dir, self.NAME, self.LAYOUT, self.IGNORED, self.NEW_CNAMES)
