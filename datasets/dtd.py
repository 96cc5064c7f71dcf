"""Describable Textures (CoOp layout): 47 classes, base/new 24/23.

Split: ``split_zhou_DescribableTextures.json`` if present, else a 50/20/30 per-class split
of ``images/<class>/``, saved to the cache.
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, DatasetBase

NAME = "DescribableTextures"
LAYOUT = """\
dtd/
  images/<class>/<class>_0001.jpg ...
  split_zhou_DescribableTextures.json   (CoOp's split; optional, built into the cache if absent)"""


@DATASET_REGISTRY.register()
class DescribableTextures(DatasetBase):
    dataset_dir = "dtd"

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
