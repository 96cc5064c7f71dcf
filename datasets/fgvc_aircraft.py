"""FGVC-Aircraft (CoOp layout): 100 variants, base/new 50/50.

Always the official split: ``images_variant_{train,val,test}.txt`` (lines
``<image id> <variant name>``), class list and order from ``variants.txt``.
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, Datum, DatasetBase

NAME = "FGVCAircraft"
LAYOUT = """\
fgvc_aircraft/                     (the contents of fgvc-aircraft-2013b/data/)
  images/<image id>.jpg ...
  variants.txt
  images_variant_train.txt, images_variant_val.txt, images_variant_test.txt"""


@DATASET_REGISTRY.register()
class FGVCAircraft(DatasetBase):
    dataset_dir = "fgvc_aircraft"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        image_dir = os.path.join(ddir, "images")
        vfile = common.require_file(os.path.join(ddir, "variants.txt"), NAME, LAYOUT, "variant list")
        classnames = common.read_lines(vfile)
        cname2lab = {c: i for i, c in enumerate(classnames)}
        splits = {}
        for split in ("train", "val", "test"):
            path = common.require_file(os.path.join(ddir, f"images_variant_{split}.txt"), NAME, LAYOUT,
                                       "official split list (no other way to build the split)")
            items = []
            for i, line in enumerate(common.read_lines(path)):
                parts = line.split(" ", 1)
                if len(parts) != 2 or parts[1] not in cname2lab:
                    common.fail(NAME, f"{path} line {i + 1}: expected '<image id> <variant from variants.txt>', "
                                      f"got {line!r}", LAYOUT)
                items.append(Datum(os.path.join(image_dir, parts[0] + ".jpg"), cname2lab[parts[1]], 0, parts[1]))
            splits[split] = items
        splits = common.check_files_exist(splits, NAME, "images_variant_*.txt",
                                          bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False)))
        super().__init__(**common.finish_single_label(cfg, NAME, splits["train"], splits["val"], splits["test"],
                                                      classnames))
