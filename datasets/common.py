"""Helpers shared by the benchmark modules (not a dataset; not auto-imported).

Conventions
- Single-label: ``Datum.label`` is an int in ``0..C-1`` indexing ``classnames``.
- Multi-label: ``Datum.label`` is an ``np.int8`` vector of length ``C``:
  1 positive, 0 negative, -1 unknown (no loss, not scored). Source encodings are
  converted where they are read (VOC's 1/-1/0, COCO's instance lists, NUS-WIDE's 0/1 files).
- Split files are CoOp's ``split_zhou_<Name>.json``:
  ``{"train"|"val"|"test": [[relative_path, label, classname], ...]}``, paths relative to the
  dataset's image folder. Looked for in the dataset folder first, then in the cache.
- Anything this package writes (built splits, parsed annotations) goes under
  ``<CACHE_DIR>/datasets/<Name>-<hash of the dataset folder>/``, never under ``DATASET.ROOT``
  (which may be read-only).
- Building a dataset reads lists and annotations only; images are opened by the data loader
  (``engine.utils.read_image`` names a missing or corrupt file). Image existence is checked
  cheaply: every entry of a list with at most ``FULL_CHECK_LIMIT`` entries, else
  ``SAMPLE_SIZE`` evenly spaced entries (first and last included); when one checked entry is
  missing, the whole list is scanned to report the count and the first few missing paths.
"""
import contextlib
import gc
import hashlib
import json
import os
import random
import textwrap

import numpy as np

from cpt.engine.config import resolve_cache_dir
from cpt.engine.data.datasets import DatasetBase, Datum, apply_fewshot_and_subsample, class_split_indices
from cpt.engine.utils import atomic_write_bytes, get_logger, listdir_nohidden

FULL_CHECK_LIMIT = 20000
SAMPLE_SIZE = 1000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder, list, split file or image is missing or malformed.

    The message names the dataset, the path looked at, and the expected layout.
    """


def fail(name, problem, layout=None):
    msg = f"{name}: {problem}"
    if layout:
        msg += "\nExpected layout under DATASET.ROOT (--root):\n" + textwrap.indent(layout.strip("\n"), "  ")
    raise DatasetLayoutError(msg)


def _preview(paths, k=5):
    shown = ", ".join(str(p) for p in paths[:k])
    return shown + (", ..." if len(paths) > k else "")


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


# ----------------------------------------------------------------------------- paths
def dataset_root(cfg, name, layout):
    """Absolute ``DATASET.ROOT``; fails when it is empty or does not exist."""
    root = cfg.DATASET.ROOT
    if not root:
        fail(name, "DATASET.ROOT is empty; pass --root pointing at the folder that holds the datasets", layout)
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        fail(name, f"dataset root {root} does not exist", layout)
    return root


def require_dir(path, name, layout, what="folder"):
    if not os.path.isdir(path):
        fail(name, f"missing {what}: {path}", layout)
    return path


def require_file(path, name, layout, what="file"):
    if not os.path.isfile(path):
        fail(name, f"missing {what}: {path}", layout)
    return path


def first_existing(paths):
    for p in paths:
        if os.path.exists(p):
            return p
    return None


def dataset_cache_dir(cfg, name, dataset_dir):
    """``<CACHE_DIR>/datasets/<Name>-<sha1(abs dataset folder)[:10]>`` (not created here)."""
    digest = hashlib.sha1(os.path.abspath(dataset_dir).encode("utf-8")).hexdigest()[:10]
    return os.path.join(resolve_cache_dir(cfg), "datasets", f"{name}-{digest}")


def split_filename(name):
    return f"split_zhou_{name}.json"


def find_split_file(cfg, name, dataset_dir):
    """The split file in the dataset folder, else the one built earlier in the cache, else None."""
    return first_existing([os.path.join(dataset_dir, split_filename(name)),
                           os.path.join(dataset_cache_dir(cfg, name, dataset_dir), split_filename(name))])


def write_json_compact(obj, path):
    atomic_write_bytes(json.dumps(obj, separators=(",", ":")).encode("utf-8"), path)


def save_split_to_cache(cfg, name, dataset_dir, image_dir, train, val, test):
    """Write a CoOp split file (compact JSON) into the dataset's cache folder; returns its path."""
    path = os.path.join(dataset_cache_dir(cfg, name, dataset_dir), split_filename(name))

    base = os.path.join(image_dir, "")

    def rel(p):
        return p[len(base):] if p.startswith(base) else os.path.relpath(p, image_dir)

    def convert(items):
        return [[rel(x.impath), int(x.label), x.classname] for x in items]

    write_json_compact({"train": convert(train), "val": convert(val), "test": convert(test)}, path)
    get_logger().info(f"{name}: built split saved to {path}")
    return path


# ----------------------------------------------------------------------------- checks
def verification_indices(n):
    """Indices of a list of ``n`` entries whose files are checked (see module docstring)."""
    if n <= FULL_CHECK_LIMIT:
        return range(n)
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, SAMPLE_SIZE)})


def check_files_exist(splits, name, source, skip_missing=False):
    """Check that the image files of ``splits`` (dict split name -> list of Datum) exist.

    Returns the splits (with missing entries dropped when ``skip_missing``). Raises
    ``DatasetLayoutError`` with the count and the first few missing paths otherwise.
    """
    out = {}
    for split, items in splits.items():
        idx = verification_indices(len(items))
        if skip_missing:
            keep = [x for x in items if os.path.exists(x.impath)]
            if len(keep) < len(items):
                get_logger().warning(f"{name}: dropped {len(items) - len(keep)} {split} entries whose image "
                                     f"is missing (DATASET.SKIP_MISSING_IMAGES)")
            out[split] = keep
            continue
        if all(os.path.exists(items[i].impath) for i in idx):
            out[split] = items
            continue
        missing = [x.impath for x in items if not os.path.exists(x.impath)]
        fail(name, f"{source} lists {len(missing)} {split} image(s) (of {len(items)}) that do not exist, "
                   f"e.g. {_preview(missing)}")
    return out


def classnames_from_items(items, name, source):
    """Class names (index = label) from single-label items; labels must be 0..C-1 with one name each."""
    names = {}
    for x in items:
        y = int(x.label)
        old = names.setdefault(y, x.classname)
        if old != x.classname:
            fail(name, f"{source}: label {y} has two class names ({old!r} and {x.classname!r})")
    if not names:
        fail(name, f"{source} holds no items")
    n = max(names) + 1
    gaps = [y for y in range(n) if y not in names]
    if min(names) < 0 or gaps:
        fail(name, f"{source}: labels must be 0..C-1 without gaps; missing labels {_preview(gaps)}, "
                   f"smallest {min(names)}")
    return [names[y] for y in range(n)]


def read_split_file(path, image_dir, name):
    """Read a CoOp split file into ``train, val, test`` lists of ``Datum`` plus ``{label: classname}``.

    Same result as ``engine.data.read_split`` (paths joined to ``image_dir``), about 3x as fast
    on ImageNet-sized files (string concatenation instead of ``os.path.join``, GC paused);
    the file's structure and its label -> class-name consistency are checked on the way.
    """
    base = os.path.join(image_dir, "")
    with paused_gc():
        return _read_split_file(path, base, name)


def _read_split_file(path, base, name):
    from cpt.engine.utils import read_json

    try:
        blob = read_json(path)
        splits, pairs = [], set()
        for key in ("train", "val", "test"):
            rows = blob[key]
            pairs.update((y, c) for _, y, c in rows)
            splits.append([Datum(p if p[:1] == "/" else base + p, y, 0, c) for p, y, c in rows])
    except (KeyError, ValueError, TypeError, AssertionError) as e:
        fail(name, f"split file {path} is malformed ({type(e).__name__}: {e}); expected "
                   '{"train"|"val"|"test": [[relative_path, label, classname], ...]}')
    names = {}
    for y, c in sorted(pairs, key=repr):
        if not isinstance(y, int) or isinstance(y, bool):
            fail(name, f"split file {path}: labels must be integers, found {y!r}")
        if names.setdefault(y, c) != c:
            fail(name, f"split file {path}: label {y} has two class names ({names[y]!r} and {c!r})")
    return splits[0], splits[1], splits[2], names


def load_split_file(cfg, path, image_dir, name, classnames=None):
    """Read a CoOp split file; validate labels; check (cheaply) that the images exist.

    ``classnames``: the full class list when the dataset defines one (labels must index it);
    else it is derived from the file (labels must be 0..C-1). Returns ``train, val, test, classnames``.
    """
    train, val, test, names = read_split_file(path, image_dir, name)
    if not names:
        fail(name, f"split file {path} holds no items")
    if classnames is None:
        gaps = [y for y in range(max(names) + 1) if y not in names]
        if min(names) < 0 or gaps:
            fail(name, f"split file {path}: labels must be 0..C-1 without gaps; missing labels {_preview(gaps)}, "
                       f"smallest {min(names)}")
        classnames = [names[y] for y in range(len(names))]
    else:
        bad = sorted(y for y in names if not 0 <= y < len(classnames))
        if bad:
            fail(name, f"split file {path}: labels outside 0..{len(classnames) - 1}: {_preview(bad)}")
    skip = bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False))
    s = check_files_exist({"train": train, "val": val, "test": test}, name, f"split file {path}", skip)
    return s["train"], s["val"], s["test"], classnames


def split_or_build(cfg, name, dataset_dir, image_dir, build, classnames=None):
    """Use ``split_zhou_<Name>.json`` when present, else ``build()`` and save it to the cache.

    ``build()`` returns ``train, val, test`` and raises ``DatasetLayoutError`` when the files
    it needs are missing (the message should say that the split file was not found either).
    """
    path = find_split_file(cfg, name, dataset_dir)
    if path is not None:
        return load_split_file(cfg, path, image_dir, name, classnames)
    train, val, test = build()
    if classnames is None:
        classnames = classnames_from_items(train + val + test, name, "the built split")
    save_split_to_cache(cfg, name, dataset_dir, image_dir, train, val, test)
    return train, val, test, classnames


def no_split_message(cfg, name, dataset_dir, missing):
    return (f"no split file {split_filename(name)} in {dataset_dir} "
            f"(nor a built one in {dataset_cache_dir(cfg, name, dataset_dir)}), and the split cannot be "
            f"built because {missing} is missing")


# ----------------------------------------------------------------------------- building splits
def list_images(folder):
    """Sorted non-hidden image files (by extension) in ``folder``."""
    return sorted(f for f in listdir_nohidden(folder) if f.lower().endswith(IMAGE_EXTENSIONS))


def read_and_split_folders(image_dir, name, layout, ignored=(), new_cnames=None, p_trn=0.5, p_val=0.2,
                           seed=0):
    """CoOp's per-class split of ``image_dir/<class>/<image>``: 50/20/30 by default.

    Classes are the sorted folder names (minus ``ignored``); labels follow that order;
    ``new_cnames`` renames classes. Per class: ``n_train = round(n * p_trn)``,
    ``n_val = round(n * p_val)``, the rest is test; images are shuffled with
    ``random.Random(seed)`` (the split is then saved, so it is reproducible).
    """
    rng = random.Random(seed)
    categories = sorted(c for c in listdir_nohidden(image_dir)
                        if c not in ignored and os.path.isdir(os.path.join(image_dir, c)))
    if not categories:
        fail(name, f"no class folders in {image_dir}", layout)
    train, val, test = [], [], []
    for label, category in enumerate(categories):
        folder = os.path.join(image_dir, category)
        images = [os.path.join(folder, f) for f in list_images(folder)]
        if not images:
            fail(name, f"class folder {folder} holds no images", layout)
        rng.shuffle(images)
        n = len(images)
        n_train, n_val = round(n * p_trn), round(n * p_val)
        if n_train < 1 or n_val < 1 or n - n_train - n_val < 1:
            fail(name, f"class folder {folder} has {n} images; building a {p_trn:.0%}/{p_val:.0%}/"
                       f"{1 - p_trn - p_val:.0%} split needs at least one image per split", layout)
        cname = (new_cnames or {}).get(category, category)
        train += [Datum(p, label, 0, cname) for p in images[:n_train]]
        val += [Datum(p, label, 0, cname) for p in images[n_train:n_train + n_val]]
        test += [Datum(p, label, 0, cname) for p in images[n_train + n_val:]]
    return train, val, test


def split_trainval(trainval, p_val=0.2, seed=0):
    """CoOp's train/val split of an official train set: per class, ``round(p_val * n)`` (at least 1) to val."""
    rng = random.Random(seed)
    by_label = {}
    for x in trainval:
        by_label.setdefault(x.label, []).append(x)
    train, val = [], []
    for label in sorted(by_label):
        items = list(by_label[label])
        rng.shuffle(items)
        n_val = max(1, round(p_val * len(items))) if len(items) > 1 else 0
        val += items[:n_val]
        train += items[n_val:]
    return train, val


def read_lines(path):
    """Non-empty, stripped lines (CRLF tolerated)."""
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return [ln.strip() for ln in f if ln.strip()]


def read_imagenet_classnames(path, name, layout):
    """``classnames.txt``: ``<wnid> <class name>`` per line -> ordered dict wnid -> name (file order = label)."""
    require_file(path, name, layout, "class-name list")
    out = {}
    for i, line in enumerate(read_lines(path)):
        parts = line.split(" ", 1)
        if len(parts) != 2:
            fail(name, f"{path} line {i + 1}: expected '<wnid> <class name>', got {line!r}", layout)
        out[parts[0]] = parts[1].strip()
    return out


def list_class_folders(image_dir, folders, labels, classnames, name, layout, strict=True):
    """Items of ``image_dir/<folder>/*`` for each folder, with its label and class name.

    ``strict``: every folder must exist and hold at least one image.
    """
    with paused_gc():
        return _list_class_folders(image_dir, folders, labels, classnames, name, layout, strict)


def _list_class_folders(image_dir, folders, labels, classnames, name, layout, strict):
    items = []
    missing = [f for f in folders if not os.path.isdir(os.path.join(image_dir, f))]
    if missing and strict:
        fail(name, f"{len(missing)} class folder(s) missing in {image_dir}: {_preview(missing)}", layout)
    for folder, label in zip(folders, labels):
        d = os.path.join(image_dir, folder)
        if not os.path.isdir(d):
            continue
        files = list_images(d)
        if not files:
            fail(name, f"class folder {d} holds no images", layout)
        cname = classnames[label]
        items += [Datum(os.path.join(d, f), label, 0, cname) for f in files]
    return items


# ----------------------------------------------------------------------------- finishing
def finish_single_label(cfg, name, train, val, test, classnames, dataset_dir=None):
    """Few-shot (Dassl's draw, or upstream's pickle in ``dataset_dir/split_fewshot/``) + base/new;
    returns the kwargs for ``DatasetBase.__init__``."""
    with paused_gc():
        train, val, test, classnames = apply_fewshot_and_subsample(cfg, name, train, val, test, classnames,
                                                                   dataset_dir=dataset_dir)
    return dict(train_x=train, val=val, test=test, classnames=classnames)


def finish_test_only(cfg, name, test, classnames):
    """Test-only datasets: no few-shot; base/new applies to the test set."""
    from cpt.engine.data.datasets import subsample_classes

    test, classnames = subsample_classes(test, subsample=cfg.DATASET.SUBSAMPLE_CLASSES, classnames=classnames)
    return dict(train_x=[], val=[], test=test, classnames=classnames)


# ----------------------------------------------------------------------------- multi-label
def multihot(num_classes, positives=(), unknown=()):
    """int8 vector: 1 at ``positives``, -1 at ``unknown``, 0 elsewhere."""
    v = np.zeros(num_classes, dtype=np.int8)
    if len(unknown):
        v[list(unknown)] = -1
    if len(positives):
        v[list(positives)] = 1
    return v


VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
# Prompt-friendly names, same order (index = label).
VOC_CLASSNAMES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
                  "dining table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa",
                  "train", "tv monitor"]
VOC_DIFFICULT_VALUES = {"ignore": -1, "positive": 1, "negative": 0}


def voc_difficult_value(cfg):
    mode = str(cfg.DATASET.get("VOC_DIFFICULT", "ignore")).lower()
    if mode not in VOC_DIFFICULT_VALUES:
        raise ValueError(f"DATASET.VOC_DIFFICULT must be one of {sorted(VOC_DIFFICULT_VALUES)}, got {mode!r}")
    return VOC_DIFFICULT_VALUES[mode]


def read_voc_imagesets(voc_dir, split, difficult, name, layout):
    """Labels of a VOC ``split`` from ``ImageSets/Main/<cls>_<split>.txt`` (lines ``<id> <1|-1|0>``).

    Returns an ordered dict image id -> int8 vector over ``VOC_CLASSES``: 1 -> 1, -1 -> 0,
    0 (difficult) -> ``difficult``; an id absent from a class file gets -1 (unknown).
    Image order is that of ``<split>.txt`` when present, else of the first class file.
    """
    main = require_dir(os.path.join(voc_dir, "ImageSets", "Main"), name, layout, "ImageSets/Main folder")
    table = {}
    for c, cls in enumerate(VOC_CLASSES):
        path = require_file(os.path.join(main, f"{cls}_{split}.txt"), name, layout, "class label list")
        for i, line in enumerate(read_lines(path)):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("1", "-1", "0"):
                fail(name, f"{path} line {i + 1}: expected '<image id> <1|-1|0>', got {line!r}", layout)
            row = table.get(parts[0])
            if row is None:
                row = table[parts[0]] = np.full(len(VOC_CLASSES), -1, dtype=np.int8)
            row[c] = {"1": 1, "-1": 0, "0": difficult}[parts[1]]
    split_list = os.path.join(main, f"{split}.txt")
    order = [ln.split()[0] for ln in read_lines(split_list)] if os.path.isfile(split_list) else list(table)
    return {i: table.get(i, np.full(len(VOC_CLASSES), -1, dtype=np.int8)) for i in order}


def source_stamp(paths):
    """Identity of source files for a parse cache: absolute path, size and mtime of each."""
    out = []
    for p in paths:
        st = os.stat(p)
        out.append([os.path.abspath(p), st.st_size, st.st_mtime_ns])
    return out


def cached_parse(cfg, name, dataset_dir, key, sources, parse):
    """``parse()`` (JSON-serialisable result) cached in the dataset's cache folder, keyed by ``sources``."""
    path = os.path.join(dataset_cache_dir(cfg, name, dataset_dir), f"{key}.json")
    stamp = source_stamp(sources)
    if os.path.isfile(path):
        try:
            with open(path, "r") as f:
                blob = json.load(f)
            if blob.get("sources") == stamp:
                return blob["data"]
        except (OSError, ValueError):
            pass
    data = parse()
    write_json_compact({"sources": stamp, "data": data}, path)
    return data


def read_coco_instances(path, name, layout):
    """COCO instances JSON -> ``{"classnames": [...], "images": [[id, file_name, [class idx, ...]], ...]}``.

    Classes in category-id order (80 for COCO); images in the file's order; all annotations
    count (crowd included).
    """
    require_file(path, name, layout, "COCO instances file")
    try:
        with open(path, "r") as f:
            blob = json.load(f)
        cats = sorted(blob["categories"], key=lambda c: c["id"])
        cat2idx = {c["id"]: i for i, c in enumerate(cats)}
        pos = {}
        for a in blob.get("annotations", []):
            pos.setdefault(a["image_id"], set()).add(cat2idx[a["category_id"]])
        images = [[im["id"], im["file_name"], sorted(pos.get(im["id"], ()))] for im in blob["images"]]
    except (KeyError, TypeError, ValueError) as e:
        fail(name, f"{path} is not a COCO instances file ({type(e).__name__}: {e})", layout)
    return {"classnames": [c["name"] for c in cats], "images": images}


def lt_groups(train, subsample):
    """Long-tail groups from positives per class in the full training set (before few-shot).

    head: >= 100 images, medium: 20-99, tail: < 20. Indices refer to the classes kept by
    ``subsample`` (0..k-1 after the base/new cut).
    """
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


# Caption labelling (TaI-DPT): class names plus the synonym files of datasets/data/, registered by
# dataset name in datasets/captions.py; the rule is engine.data.captions.CaptionMatcher.
def caption_multihot(caption, classnames, synonyms=None, dataset_name="COCO2014"):
    """Multi-hot (int8, 1/0) of the classes a caption names: the class name, a plural, or a synonym
    (``synonyms`` dict, default: the registered file of ``dataset_name``)."""
    from cpt.engine.data.captions import CaptionMatcher, synonyms_for
    return CaptionMatcher(classnames, synonyms_for(dataset_name) if synonyms is None else synonyms)(caption)


class MultiLabelDataset(DatasetBase):
    """A multi-label dataset with optional captions for text-only training (TaI-DPT).

    ``captions()`` returns ``[(caption, multi-hot over self.classnames), ...]`` from a COCO
    captions file, keeping captions that name at least one class (class names and the synonym
    file registered for the dataset, ``datasets/data/synonyms_*.json``); with
    ``limit`` N > 0 (``DATASET.NUM_CAPTIONS``) only the first N of them.
    """

    caption_files = ()

    def captions(self, limit=0):
        path = first_existing(self.caption_files)
        if path is None:
            raise DatasetLayoutError(f"{type(self).__name__}: no captions file; looked for "
                                     f"{', '.join(self.caption_files)}")
        from cpt.engine.data.captions import CaptionMatcher, synonyms_for
        import cpt.datasets.captions  # noqa: F401  (registers the synonym files)
        with open(path, "r") as f:
            anns = json.load(f)["annotations"]
        matcher = CaptionMatcher(self.classnames, synonyms_for(type(self).__name__))
        limit = int(limit or 0)
        out = []
        for a in anns:
            v = matcher(a["caption"])
            if v.any():
                out.append((a["caption"].strip(), v))
                if len(out) == limit:
                    break
        return out


def coco_caption_files(root):
    ann = os.path.join(root, "coco", "annotations")
    return (os.path.join(ann, "captions_train2017.json"), os.path.join(ann, "captions_train2014.json"))


def require_captions_if_needed(cfg, files, name, layout):
    if str(cfg.DATASET.get("TRAIN_SOURCE", "images")) == "captions" and first_existing(files) is None:
        fail(name, f"DATASET.TRAIN_SOURCE is 'captions' but no captions file exists ({', '.join(files)})", layout)


def finish_multilabel(cfg, name, train, test, classnames, groups=None):
    """Few-shot (K images per class, engine rule) + base/new column cut; kwargs for ``DatasetBase``."""
    with paused_gc():
        train, val, test, classnames = apply_fewshot_and_subsample(cfg, name, train, [], test, classnames)
    return dict(train_x=train, val=val, test=test, classnames=classnames, groups=groups)



def imagenet_classnames_for(root, ddir, name, layout):
    """ImageNet's ``classnames.txt`` for a variant: in the variant folder, else in ``<root>/imagenet/``."""
    candidates = [os.path.join(ddir, "classnames.txt"), os.path.join(root, "imagenet", "classnames.txt")]
    path = first_existing(candidates)
    if path is None:
        fail(name, f"missing ImageNet class-name list; looked at {', '.join(candidates)}", layout)
    return read_imagenet_classnames(path, name, layout)


def class_subfolders(image_dir):
    """Sorted non-hidden sub-folder names of ``image_dir``."""
    return sorted(f for f in listdir_nohidden(image_dir) if os.path.isdir(os.path.join(image_dir, f)))


def imagenet_subset_items(root, ddir, image_dir, name, layout):
    """Test items of a 200-class ImageNet subset (ImageNet-A/-R): wnid folders, sorted.

    Label = index in the sorted folder list; class name = ImageNet's name for the wnid.
    Returns ``items, classnames``.
    """
    names = imagenet_classnames_for(root, ddir, name, layout)
    require_dir(image_dir, name, layout, "image folder")
    folders = class_subfolders(image_dir)
    if not folders:
        fail(name, f"no class folders in {image_dir}", layout)
    unknown = [f for f in folders if f not in names]
    if unknown:
        fail(name, f"{len(unknown)} folder(s) in {image_dir} are not ImageNet wnids: {_preview(unknown)}", layout)
    classnames = [names[f] for f in folders]
    items = list_class_folders(image_dir, folders, range(len(folders)), classnames, name, layout)
    return items, classnames


def coco_split(cfg, name, ddir, folder, layout, keep_ids=None):
    """Items of a COCO split (``folder`` = train2014, val2014, train2017, ...) and the class names.

    ``keep_ids``: optional ordered list of image ids to keep (in that order); otherwise all images
    with at least one instance, in the file's order.
    """
    ann = os.path.join(ddir, "annotations", f"instances_{folder}.json")
    require_file(ann, name, layout, "COCO instances file")
    require_dir(os.path.join(ddir, folder), name, layout, "image folder")
    data = cached_parse(cfg, name, ddir, f"instances_{folder}", [ann],
                        lambda: read_coco_instances(ann, name, layout))
    classnames = data["classnames"]
    n = len(classnames)
    images = data["images"]
    if keep_ids is not None:
        by_id = {im[0]: im for im in images}
        missing = [i for i in keep_ids if i not in by_id]
        if missing:
            fail(name, f"{len(missing)} image id(s) of the id list are not in {ann}: {_preview(missing)}",
                 layout)
        images = [by_id[i] for i in keep_ids]
    else:
        images = [im for im in images if im[2]]
    items = [Datum(os.path.join(ddir, folder, fn), multihot(n, pos), 0, "") for _, fn, pos in images]
    return items, classnames


def voc_items(voc_dir, split, difficult, name, layout, ids=None):
    """Items of a VOC split: ``JPEGImages/<id>.jpg`` with ``read_voc_imagesets`` labels.

    ``ids``: optional ordered subset of image ids (e.g. a long-tail list); unknown ids fail.
    """
    table = read_voc_imagesets(voc_dir, split, difficult, name, layout)
    if ids is not None:
        missing = [i for i in ids if i not in table]
        if missing:
            fail(name, f"{len(missing)} image id(s) of the id list are not in ImageSets/Main/*_{split}.txt of "
                       f"{voc_dir}: {_preview(missing)}", layout)
        table = {i: table[i] for i in ids}
    jpeg = require_dir(os.path.join(voc_dir, "JPEGImages"), name, layout, "JPEGImages folder")
    return [Datum(os.path.join(jpeg, f"{i}.jpg"), v, 0, "") for i, v in table.items()]


def read_id_list(folder, name, layout, as_int=False):
    """Image ids of a long-tail list: ``<folder>/img_id.txt`` (one id per line) or ``img_id.pkl``.

    The ``.pkl`` form is the long-tailed multi-label works' release (a pickled sequence of ids;
    only load files you trust). Order is kept (a set is sorted); duplicates fail.
    """
    txt, pkl = os.path.join(folder, "img_id.txt"), os.path.join(folder, "img_id.pkl")
    if os.path.isfile(txt):
        ids, path = [ln.split()[0] for ln in read_lines(txt)], txt
    elif os.path.isfile(pkl):
        import pickle

        with open(pkl, "rb") as f:
            obj = pickle.load(f)
        if isinstance(obj, dict) and len(obj) == 1:
            obj = next(iter(obj.values()))
        ids = sorted(obj) if isinstance(obj, (set, frozenset)) else list(np.asarray(obj).reshape(-1).tolist())
        path = pkl
    else:
        fail(name, f"missing long-tail image-id list: {txt} (or {pkl})", layout)
    try:
        ids = [int(i) for i in ids] if as_int else [str(i) for i in ids]
    except ValueError as e:
        fail(name, f"{path}: image ids must be integers ({e})", layout)
    if len(set(ids)) != len(ids):
        fail(name, f"{path} lists {len(ids) - len(set(ids))} duplicate image id(s)", layout)
    if not ids:
        fail(name, f"{path} is empty", layout)
    return ids
