"""Food-101 (CoOp layout): 101 classes, base/new 51/50.

Split: ``split_zhou_Food101.json`` if present, else (as CoOp) a 50/20/30 per-class split of
``images/<class>/`` (the official meta/ lists are not used), saved to the cache.
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, DatasetBase

NAME = "Food101"
LAYOUT = """\
food-101/
  images/<class>/<id>.jpg ...       (e.g. images/apple_pie/1005649.jpg)
  split_zhou_Food101.json           (CoOp's split; optional, built into the cache if absent)"""


@DATASET_REGISTRY.register()
class Food101(DatasetBase):
    dataset_dir = "food-101"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        image_dir = os.path.join(ddir, "images")

        def build():
            if not os.path.isdir(image_dir):
                common.fail(NAME, common.no_split_message(cfg, NAME, ddir, image_dir), LAYOUT)
            return common.read_and_split_folders(image_dir, NAME, LAYOUT)

        train, val, test, classnames = common.split_or_build(cfg, NAME, ddir, image_dir, build)
        super().__init__(**common.finish_single_label(cfg, NAME, train, val, test, classnames))
