"""ImageNet-1k (CoOp layout): 1000 classes, base/new 500/500; ``val`` is the test set.

Class list and order: ``classnames.txt`` (``<wnid> <name>`` per line; label = line index,
CoOp's file is sorted by wnid), for all 1000 classes whatever the folders hold. Every class
must have a non-empty folder in ``images/train`` and ``images/val``. The folder listing is
saved once as a CoOp-format split file in the cache (``split_zhou_ImageNet.json``, ``val``
empty) and read from there afterwards; a ``split_zhou_ImageNet.json`` placed in
``imagenet/`` is used first. Delete the cached file to re-list the folders.
As in CoOp, the dataset's ``val`` is its ``test`` (no held-out validation split exists).
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, DatasetBase, apply_fewshot_and_subsample

NAME = "ImageNet"
LAYOUT = """\
imagenet/
  images/train/<wnid>/*.JPEG        (e.g. images/train/n01440764/n01440764_10026.JPEG)
  images/val/<wnid>/*.JPEG          (the 50,000 validation images sorted into wnid folders)
  classnames.txt                    (CoOp's list: '<wnid> <class name>' per line, 1000 lines)"""


@DATASET_REGISTRY.register()
class ImageNet(DatasetBase):
    dataset_dir = "imagenet"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        names = common.read_imagenet_classnames(os.path.join(ddir, "classnames.txt"), NAME, LAYOUT)
        wnids, classnames = list(names), list(names.values())
        image_dir = os.path.join(ddir, "images")
        path = common.find_split_file(cfg, NAME, ddir)
        if path is not None:
            train, _, test, _ = common.load_split_file(cfg, path, image_dir, NAME, classnames)
        else:
            lists = {}
            for split in ("train", "val"):
                sdir = common.require_dir(os.path.join(image_dir, split), NAME, LAYOUT, f"{split} image folder")
                extra = [f for f in common.class_subfolders(sdir) if f not in names]
                if extra:
                    common.fail(NAME, f"{len(extra)} folder(s) in {sdir} are not in classnames.txt: "
                                      f"{common._preview(extra)}", LAYOUT)
                lists[split] = common.list_class_folders(sdir, wnids, range(len(wnids)), classnames, NAME, LAYOUT)
            train, test = lists["train"], lists["val"]
            common.save_split_to_cache(cfg, NAME, ddir, image_dir, train, [], test)
        train, _, test, classnames = apply_fewshot_and_subsample(cfg, NAME, train, [], test, classnames)
        super().__init__(train_x=train, val=test, test=test, classnames=classnames)
