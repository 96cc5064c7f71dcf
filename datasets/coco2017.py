"""MS-COCO 2017 val as a test-only multi-label set (domain generalisation targets): 80 classes.

Test: the val2017 images with at least one instance (4,952), labels from
``instances_val2017.json`` in category-id order (the same 80 classes, same order, as COCO2014, so
a prompt trained on COCO2014 is evaluated with ``--eval-only --model-dir``). No train or val split;
base/new (40/40) applies to the test columns. COCO-LT's test set is the same images with the
long-tail groups (``COCOLT``).
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY

NAME = "COCO2017"
LAYOUT = """\
coco/
  annotations/instances_val2017.json
  val2017/000000000139.jpg ..."""


@DATASET_REGISTRY.register()
class COCO2017(common.MultiLabelDataset):
    dataset_dir = "coco"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        self.caption_files = common.coco_caption_files(root)
        test, classnames = common.coco_split(cfg, NAME, ddir, "val2017", LAYOUT)
        s = common.check_files_exist({"test": test}, NAME, "instances_val2017.json",
                                     bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False)))
        super().__init__(**common.finish_test_only(cfg, NAME, s["test"], classnames))
