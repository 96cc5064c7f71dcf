"""SUN397 (CoOp layout): 397 classes, base/new 199/198.

Split: ``split_zhou_SUN397.json`` if present, else built from the official partition files
``ClassName.txt``, ``Training_01.txt``, ``Testing_01.txt`` (80/20 train/val of the training
list), saved to the cache. Class-name cleaning (CoOp's rule): drop the leading letter
folder, put the remaining path parts in reverse order, joined by spaces, so that
"/a/abbey" -> "abbey" and "/a/apartment_building/outdoor" -> "outdoor apartment_building"
(underscores are kept in the split, as in CoOp's released file; prompt learners replace
them with spaces).
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, Datum, DatasetBase

NAME = "SUN397"
LAYOUT = """\
sun397/
  SUN397/a/abbey/sun_aaaulhwrhqgejnyt.jpg ...
  split_zhou_SUN397.json            (CoOp's split; optional if the partition files are there)
  ClassName.txt, Training_01.txt, Testing_01.txt   (from SUN397's Partitions.zip)"""


def clean_classname(folder):
    """'/a/apartment_building/outdoor' or 'a/apartment_building/outdoor' -> 'outdoor apartment_building'."""
    parts = folder.strip("/").split("/")[1:]
    return " ".join(parts[::-1])


@DATASET_REGISTRY.register()
class SUN397(DatasetBase):
    dataset_dir = "sun397"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        image_dir = os.path.join(ddir, "SUN397")

        def build():
            files = [os.path.join(ddir, f) for f in ("ClassName.txt", "Training_01.txt", "Testing_01.txt")]
            for p in files:
                if not os.path.isfile(p):
                    common.fail(NAME, common.no_split_message(cfg, NAME, ddir, p), LAYOUT)
            folders = [ln.strip("/") for ln in common.read_lines(files[0])]
            cname2lab = {c: i for i, c in enumerate(folders)}

            def read(path):
                items = []
                for i, line in enumerate(common.read_lines(path)):
                    rel = line.strip("/")
                    folder = os.path.dirname(rel)
                    if folder not in cname2lab:
                        common.fail(NAME, f"{path} line {i + 1}: class folder {folder!r} is not in ClassName.txt",
                                    LAYOUT)
                    items.append(Datum(os.path.join(image_dir, rel), cname2lab[folder], 0, clean_classname(folder)))
                return items

            trainval, test = read(files[1]), read(files[2])
            train, val = common.split_trainval(trainval, p_val=0.2)
            s = common.check_files_exist({"train": train, "val": val, "test": test}, NAME, "Training/Testing_01.txt",
                                         bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False)))
            return s["train"], s["val"], s["test"]

        train, val, test, classnames = common.split_or_build(cfg, NAME, ddir, image_dir, build)
        super().__init__(**common.finish_single_label(cfg, NAME, train, val, test, classnames))
