"""ImageNet-V2 matched-frequency (CoOp layout): test only, 1000 classes mapped to ImageNet's.

Folders ``0..999`` are indices into ImageNet's ``classnames.txt`` (label = folder index);
the list is read from ``imagenetv2/classnames.txt`` or else ``imagenet/classnames.txt``.
Base/new applies to the test set (ImageNet's 500/500).
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, DatasetBase

NAME = "ImageNetV2"
LAYOUT = """\
imagenetv2/
  imagenetv2-matched-frequency-format-val/<0..999>/<hash>.jpeg
  classnames.txt                    (ImageNet's list; or imagenet/classnames.txt)"""


@DATASET_REGISTRY.register()
class ImageNetV2(DatasetBase):
    dataset_dir = "imagenetv2"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        classnames = list(common.imagenet_classnames_for(root, ddir, NAME, LAYOUT).values())
        image_dir = common.require_dir(os.path.join(ddir, "imagenetv2-matched-frequency-format-val"), NAME, LAYOUT,
                                       "image folder")
        extra = [f for f in common.class_subfolders(image_dir) if not (f.isdigit() and int(f) < len(classnames))]
        if extra:
            common.fail(NAME, f"folders in {image_dir} must be class indices 0..{len(classnames) - 1}; "
                              f"found {common._preview(extra)}", LAYOUT)
        folders = [str(i) for i in range(len(classnames))]
        test = common.list_class_folders(image_dir, folders, range(len(classnames)), classnames, NAME, LAYOUT)
        super().__init__(**common.finish_test_only(cfg, NAME, test, classnames))
