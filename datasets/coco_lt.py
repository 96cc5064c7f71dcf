"""COCO-LT (long-tailed multi-label; Wu et al., ECCV 2020): 80 classes, base/new 40/40.

Train: the 1,909 COCO-2017-train images of the released id list; test: all val2017 images
with at least one instance (4,952). Labels from the 2017 instances files (category-id
order). ``groups``: head (>= 100 training images), medium (20-99), tail (< 20), counted on
the full long-tailed train set before few-shot sampling (22/33/25 classes), with indices of
the classes kept by ``SUBSAMPLE_CLASSES``.
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY

NAME = "COCOLT"
LAYOUT = """\
coco/
  annotations/instances_train2017.json, annotations/instances_val2017.json
  train2017/000000000009.jpg ...   val2017/000000000139.jpg ...
  longtail2017/img_id.txt           (one COCO image id per line; or img_id.pkl as released with
                                     the distribution-balanced loss code, appendix/coco/longtail2017/)
  annotations/captions_train2017.json   (only for caption training)"""


@DATASET_REGISTRY.register()
class COCOLT(common.MultiLabelDataset):
    dataset_dir = "coco"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        self.caption_files = common.coco_caption_files(root)
        common.require_captions_if_needed(cfg, self.caption_files, NAME, LAYOUT)
        ids = common.read_id_list(os.path.join(ddir, "longtail2017"), NAME, LAYOUT, as_int=True)
        train, classnames = common.coco_split(cfg, NAME, ddir, "train2017", LAYOUT, keep_ids=ids)
        test, test_names = common.coco_split(cfg, NAME, ddir, "val2017", LAYOUT)
        if test_names != classnames:
            common.fail(NAME, "instances_train2017.json and instances_val2017.json have different categories", LAYOUT)
        s = common.check_files_exist({"train": train, "test": test}, NAME, "the id list / instances files",
                                     bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False)))
        groups = common.lt_groups(s["train"], cfg.DATASET.SUBSAMPLE_CLASSES)
        super().__init__(**common.finish_multilabel(cfg, NAME, s["train"], s["test"], classnames, groups))
