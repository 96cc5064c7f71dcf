"""ImageNet-Sketch (CoOp layout): test only, 1000 classes in ImageNet's order.

Folders are ImageNet wnids; label = the wnid's line in ``classnames.txt``
(``imagenet-sketch/classnames.txt`` or else ``imagenet/classnames.txt``).
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, DatasetBase

NAME = "ImageNetSketch"
LAYOUT = """\
imagenet-sketch/
  images/<wnid>/*.JPEG              (e.g. images/n01440764/sketch_0.JPEG)
  classnames.txt                    (ImageNet's list; or imagenet/classnames.txt)"""


@DATASET_REGISTRY.register()
class ImageNetSketch(DatasetBase):
    dataset_dir = "imagenet-sketch"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        names = common.imagenet_classnames_for(root, ddir, NAME, LAYOUT)
        wnids, classnames = list(names), list(names.values())
        image_dir = common.require_dir(os.path.join(ddir, "images"), NAME, LAYOUT, "image folder")
        extra = [f for f in common.class_subfolders(image_dir) if f not in names]
        if extra:
            common.fail(NAME, f"{len(extra)} folder(s) in {image_dir} are not ImageNet wnids: "
                              f"{common._preview(extra)}", LAYOUT)
        test = common.list_class_folders(image_dir, wnids, range(len(wnids)), classnames, NAME, LAYOUT)
        super().__init__(**common.finish_test_only(cfg, NAME, test, classnames))
