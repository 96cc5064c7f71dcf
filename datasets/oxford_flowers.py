"""Oxford Flowers-102 (CoOp layout): 102 classes, base/new 51/51.

Split: ``split_zhou_OxfordFlowers.json`` if present, else a 50/20/30 per-class split built
from ``imagelabels.mat`` (``labels``: 1..102 for image_00001.jpg, image_00002.jpg, ...) and
``cat_to_name.json`` (``{"1": "pink primrose", ...}``), saved to the cache.
"""
import os
import random

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, Datum, DatasetBase
from cpt.engine.utils import read_json

NAME = "OxfordFlowers"
LAYOUT = """\
oxford_flowers/
  jpg/image_00001.jpg ...
  imagelabels.mat, cat_to_name.json
  split_zhou_OxfordFlowers.json     (CoOp's split; optional, built into the cache if absent)"""


@DATASET_REGISTRY.register()
class OxfordFlowers(DatasetBase):
    dataset_dir = "oxford_flowers"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        image_dir = os.path.join(ddir, "jpg")

        def build():
            from scipy.io import loadmat

            lab_file, cname_file = os.path.join(ddir, "imagelabels.mat"), os.path.join(ddir, "cat_to_name.json")
            for p in (lab_file, cname_file):
                if not os.path.isfile(p):
                    common.fail(NAME, common.no_split_message(cfg, NAME, ddir, p), LAYOUT)
            lab2cname = read_json(cname_file)
            try:
                labels = loadmat(lab_file)["labels"].reshape(-1)
            except (KeyError, ValueError) as e:
                common.fail(NAME, f"cannot read 'labels' from {lab_file} ({e})", LAYOUT)
            by_label = {}
            for i, y in enumerate(labels):
                by_label.setdefault(int(y), []).append(os.path.join(image_dir, f"image_{i + 1:05d}.jpg"))
            missing = [y for y in by_label if str(y) not in lab2cname]
            if missing:
                common.fail(NAME, f"{cname_file} has no name for labels {missing[:5]}", LAYOUT)
            rng = random.Random(0)
            train, val, test = [], [], []
            for y in sorted(by_label):
                paths = by_label[y]
                rng.shuffle(paths)
                n = len(paths)
                n_train, n_val = round(n * 0.5), round(n * 0.2)
                if n_train < 1 or n_val < 1 or n - n_train - n_val < 1:
                    common.fail(NAME, f"label {y} has {n} images in {lab_file}; a 50/20/30 split needs "
                                      "at least one per split", LAYOUT)
                cname = lab2cname[str(y)]
                train += [Datum(p, y - 1, 0, cname) for p in paths[:n_train]]
                val += [Datum(p, y - 1, 0, cname) for p in paths[n_train:n_train + n_val]]
                test += [Datum(p, y - 1, 0, cname) for p in paths[n_train + n_val:]]
            s = common.check_files_exist({"train": train, "val": val, "test": test}, NAME, lab_file,
                                         bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False)))
            return s["train"], s["val"], s["test"]

        train, val, test, classnames = common.split_or_build(cfg, NAME, ddir, image_dir, build)
        super().__init__(**common.finish_single_label(cfg, NAME, train, val, test, classnames))
