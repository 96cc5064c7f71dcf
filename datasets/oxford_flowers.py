"""Oxford Flowers-102 (CoOp layout): 102 classes, base/new 51/51.

Split: ``split_zhou_OxfordFlowers.json`` if present, else a 50/20/30 per-class split built from
``imagelabels.mat`` (``labels``: 1..102 for image_00001.jpg, ...) and ``cat_to_name.json``
(``{"1": "pink primrose", ...}``), saved to the cache.
"""
import os

from ..engine.data import DATASET_REGISTRY
from ..engine.utils import read_json
from .splits import SplitBenchmark, split_per_class


@DATASET_REGISTRY.register()
class OxfordFlowers(SplitBenchmark):
    dataset_dir, image_subdir = "oxford_flowers", "jpg"
    LAYOUT = """\
oxford_flowers/
  jpg/image_00001.jpg ...
  imagelabels.mat, cat_to_name.json
  split_zhou_OxfordFlowers.json     (CoOp's split; optional, built into the cache if absent)"""

    def build(self, cfg, ddir, image_dir):
        from scipy.io import loadmat

        lab_file, cname_file = self.need(cfg, ddir, os.path.join(ddir, "imagelabels.mat"),
                                         os.path.join(ddir, "cat_to_name.json"))
        lab2cname = read_json(cname_file)
        try:
            labels = loadmat(lab_file)["labels"].reshape(-1)
        except (KeyError, ValueError) as e:
            self.fail(f"cannot read 'labels' from {lab_file} ({e})")
        by_label = {}
        for i, y in enumerate(labels):
            by_label.setdefault(int(y), []).append(os.path.join(image_dir, f"image_{i + 1:05d}.jpg"))
        missing = [y for y in by_label if str(y) not in lab2cname]
        if missing:
            self.fail(f"{cname_file} has no name for labels {missing[:5]}")
        groups = [(y - 1, lab2cname[str(y)], by_label[y], f"label {y} of {lab_file}") for y in sorted(by_label)]
        splits = dict(zip(("train", "val", "test"), split_per_class(groups, self.NAME, self.LAYOUT)))
        return tuple(self.checked(cfg, splits, lab_file).values())
