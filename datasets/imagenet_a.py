"""ImageNet-A (natural adversarial examples), CoOp layout: test only, 200 classes.

Classes are the wnid folders present (sorted; the official 200-class subset), named with
ImageNet's names from ``imagenet-adversarial/classnames.txt`` or else ``imagenet/classnames.txt``;
labels 0..199 index that sorted list (a 200-way problem, as in CoOp). Base/new cuts those
200 classes 100/100 (not ImageNet's base/new).
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, DatasetBase

NAME = "ImageNetA"
LAYOUT = """\
imagenet-adversarial/
  imagenet-a/<wnid>/*.jpg           (200 wnid folders; README.txt ignored)
  classnames.txt                    (ImageNet's list; or imagenet/classnames.txt)"""


@DATASET_REGISTRY.register()
class ImageNetA(DatasetBase):
    dataset_dir = "imagenet-adversarial"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        test, classnames = common.imagenet_subset_items(root, ddir, os.path.join(ddir, "imagenet-a"), NAME, LAYOUT)
        super().__init__(**common.finish_test_only(cfg, NAME, test, classnames))
