"""SUN397 (CoOp layout): 397 classes, base/new 199/198.

Split: ``split_zhou_SUN397.json`` if present, else built from the official partition files (80/20
train/val of ``Training_01.txt``), saved to the cache. Class names follow CoOp's cleaning
(:func:`clean_classname`; underscores are kept, as in CoOp's released file).
"""
import os

from ..engine.data import DATASET_REGISTRY, Datum
from .common import read_lines
from .splits import SplitBenchmark, split_trainval


def clean_classname(folder):
    """CoOp's rule: drop the letter folder, reverse the rest: '/a/apartment_building/outdoor' ->
    'outdoor apartment_building', '/a/abbey' -> 'abbey'."""
    parts = folder.strip("/").split("/")[1:]
    return " ".join(parts[::-1])


@DATASET_REGISTRY.register()
class SUN397(SplitBenchmark):
    dataset_dir, image_subdir = "sun397", "SUN397"
    LAYOUT = """\
sun397/
  SUN397/a/abbey/sun_aaaulhwrhqgejnyt.jpg ...
  split_zhou_SUN397.json            (CoOp's split; optional if the partition files are there)
  ClassName.txt, Training_01.txt, Testing_01.txt   (from SUN397's Partitions.zip)"""

    def build(self, cfg, ddir, image_dir):
        names, training, testing = self.need(cfg, ddir, *(os.path.join(ddir, f) for f in
                                                          ("ClassName.txt", "Training_01.txt", "Testing_01.txt")))
        cname2lab = {c: i for i, c in enumerate(ln.strip("/") for ln in read_lines(names))}

        def read(path):
            items = []
            for i, line in enumerate(read_lines(path)):
                rel = line.strip("/")
                folder = os.path.dirname(rel)
                if folder not in cname2lab:
                    self.fail(f"{path} line {i + 1}: class folder {folder!r} is not in ClassName.txt")
                items.append(Datum(os.path.join(image_dir, rel), cname2lab[folder], 0, clean_classname(folder)))
            return items

        train, val = split_trainval(read(training), p_val=0.2)
        s = self.checked(cfg, {"train": train, "val": val, "test": read(testing)}, "Training/Testing_01.txt")
        return s["train"], s["val"], s["test"]
