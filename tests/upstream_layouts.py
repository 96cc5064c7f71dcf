"""Small dataset trees in CoOp's layouts for the few-shot equivalence fixtures.

Written the same way by ``tests/fixtures/upstream/make_fewshot_fixtures.py`` (run against Dassl
and CoOp in a scratch folder) and by the tests (under ``tmp_path``), so both draw from the same
lists. Images are empty files: neither side opens them while building a dataset.

* ``write_dtd(root)``: ``root/dtd/images/<class>/<class>_NNNN.jpg`` and CoOp's split file
  ``split_zhou_DescribableTextures.json`` whose train list is shuffled (labels interleaved, so
  the order in which classes first appear is not the label order); 7 classes, one of them with
  fewer training images (5) than 16 shots.
* ``write_imagenet(root)``: ``root/imagenet/classnames.txt`` and ``images/{train,val}/<wnid>/``;
  files are created in a shuffled order.
"""
import json
import os
import random

DTD_CLASSES = ["banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed"]
DTD_TRAIN_COUNTS = [20, 18, 16, 5, 30, 17, 22]
DTD_VAL_COUNTS = [6, 4, 5, 3, 8, 4, 7]
DTD_TEST_COUNT = 3
SHORT_CLASS = "bubbly"  # 5 training images

IMAGENET_CLASSES = [("n01440764", "tench"), ("n01443537", "goldfish"), ("n01484850", "great white shark"),
                    ("n01491361", "tiger shark"), ("n01494475", "hammerhead shark")]
IMAGENET_TRAIN_COUNTS = [19, 12, 25, 16, 21]
IMAGENET_VAL_COUNT = 3


def _touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb"):
        pass


def write_dtd(root):
    """Write the DTD tree; returns the dataset folder."""
    ddir = os.path.join(root, "dtd")
    rng = random.Random(13)
    split = {"train": [], "val": [], "test": []}
    for label, (cname, n_tr, n_va) in enumerate(zip(DTD_CLASSES, DTD_TRAIN_COUNTS, DTD_VAL_COUNTS)):
        n = n_tr + n_va + DTD_TEST_COUNT
        rel = [f"{cname}/{cname}_{i:04d}.jpg" for i in range(1, n + 1)]
        for r in rel:
            _touch(os.path.join(ddir, "images", r))
        split["train"] += [[r, label, cname] for r in rel[:n_tr]]
        split["val"] += [[r, label, cname] for r in rel[n_tr:n_tr + n_va]]
        split["test"] += [[r, label, cname] for r in rel[n_tr + n_va:]]
    rng.shuffle(split["train"])
    rng.shuffle(split["val"])
    with open(os.path.join(ddir, "split_zhou_DescribableTextures.json"), "w") as f:
        json.dump(split, f)
    return ddir


def write_imagenet(root):
    """Write the ImageNet tree; returns the dataset folder."""
    ddir = os.path.join(root, "imagenet")
    os.makedirs(ddir, exist_ok=True)
    with open(os.path.join(ddir, "classnames.txt"), "w") as f:
        for wnid, name in IMAGENET_CLASSES:
            f.write(f"{wnid} {name}\n")
    rng = random.Random(17)
    for (wnid, _), n_tr in zip(IMAGENET_CLASSES, IMAGENET_TRAIN_COUNTS):
        for split, n in (("train", n_tr), ("val", IMAGENET_VAL_COUNT)):
            names = [f"{wnid}_{i}.JPEG" for i in rng.sample(range(1, 10000), n)]
            rng.shuffle(names)
            for fn in names:
                _touch(os.path.join(ddir, "images", split, wnid, fn))
    return ddir
