"""Caltech-101 (CoOp layout): 100 classes, base/new 50/50.

Split: ``split_zhou_Caltech101.json`` if present, else a 50/20/30 per-class split of the
class folders (``BACKGROUND_Google`` and ``Faces_easy`` ignored; four folders renamed to
singular names as CoOp does), saved to the cache.
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, DatasetBase

NAME = "Caltech101"
LAYOUT = """\
caltech-101/
  101_ObjectCategories/<class>/image_0001.jpg ...
  split_zhou_Caltech101.json      (CoOp's split; optional, built into the cache if absent)"""
IGNORED = ("BACKGROUND_Google", "Faces_easy")
NEW_CNAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}


@DATASET_REGISTRY.register()
class Caltech101(DatasetBase):
    dataset_dir = "caltech-101"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        image_dir = os.path.join(ddir, "101_ObjectCategories")

        def build():
            if not os.path.isdir(image_dir):
                common.fail(NAME, common.no_split_message(cfg, NAME, ddir, image_dir), LAYOUT)
            return common.read_and_split_folders(image_dir, NAME, LAYOUT, ignored=IGNORED, new_cnames=NEW_CNAMES)

        train, val, test, classnames = common.split_or_build(cfg, NAME, ddir, image_dir, build)
        super().__init__(**common.finish_single_label(cfg, NAME, train, val, test, classnames))
