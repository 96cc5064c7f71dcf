"""MS-COCO 2014 multi-label (TaI-DPT / DualCoOp protocol): 80 classes, base/new 40/40.

Train from ``train2014``, test from ``val2014``; classes are the instances file's
categories in category-id order (names as in the file, e.g. "traffic light"). An image is
positive for every category it has an instance of (crowd included), negative for the rest;
images without any instance are left out (82,081 train / 40,137 test images). No val split.
The parsed annotations are cached (keyed by the JSON's size and mtime) so the 450 MB file
is read once. ``captions()`` reads ``captions_train2017.json`` (or ``..._train2014.json``):
TaI-DPT's text-only training source.
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY

NAME = "COCO2014"
LAYOUT = """\
coco/
  annotations/instances_train2014.json, annotations/instances_val2014.json
  annotations/captions_train2017.json   (or captions_train2014.json; for caption training only)
  train2014/COCO_train2014_000000000009.jpg ...
  val2014/COCO_val2014_000000000042.jpg ..."""


@DATASET_REGISTRY.register()
class COCO2014(common.MultiLabelDataset):
    dataset_dir = "coco"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        self.caption_files = common.coco_caption_files(root)
        common.require_captions_if_needed(cfg, self.caption_files, NAME, LAYOUT)
        train, classnames = common.coco_split(cfg, NAME, ddir, "train2014", LAYOUT)
        test, test_names = common.coco_split(cfg, NAME, ddir, "val2014", LAYOUT)
        if test_names != classnames:
            common.fail(NAME, "instances_train2014.json and instances_val2014.json have different categories", LAYOUT)
        s = common.check_files_exist({"train": train, "test": test}, NAME, "the instances files",
                                     bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False)))
        super().__init__(**common.finish_multilabel(cfg, NAME, s["train"], s["test"], classnames))
