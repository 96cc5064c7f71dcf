"""PASCAL VOC 2007 multi-label: 20 classes in the usual order, base/new 10/10.

Train from ``trainval`` (5,011 images), test from ``test`` (4,952); no val split. Labels from
``ImageSets/Main/<cls>_<split>.txt`` (``<id> 1|-1|0``): 1 -> positive (1), -1 -> negative (0),
0 ("difficult": only difficult instances of the class) -> ``DATASET.VOC_DIFFICULT``:
"ignore" (default) -> -1 (no loss, not scored), "positive" -> 1, "negative" -> 0.
All listed images are kept. Class names are prompt-friendly ("dining table", "potted plant",
"tv monitor"). ``captions()`` labels COCO captions with these classes (TaI-DPT).
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY

NAME = "VOC2007"
LAYOUT = """\
VOCdevkit/VOC2007/
  JPEGImages/000005.jpg ...
  ImageSets/Main/<class>_trainval.txt, ImageSets/Main/<class>_test.txt   (20 classes each)
  (Annotations/ is not read)
coco/annotations/captions_train2017.json   (only for caption training)"""


@DATASET_REGISTRY.register()
class VOC2007(common.MultiLabelDataset):
    dataset_dir = "VOCdevkit"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        voc = common.require_dir(os.path.join(root, "VOCdevkit", "VOC2007"), NAME, LAYOUT, "dataset folder")
        self.caption_files = common.coco_caption_files(root)
        common.require_captions_if_needed(cfg, self.caption_files, NAME, LAYOUT)
        difficult = common.voc_difficult_value(cfg)
        train = common.voc_items(voc, "trainval", difficult, NAME, LAYOUT)
        test = common.voc_items(voc, "test", difficult, NAME, LAYOUT)
        s = common.check_files_exist({"train": train, "test": test}, NAME, "ImageSets/Main",
                                     bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False)))
        super().__init__(**common.finish_multilabel(cfg, NAME, s["train"], s["test"], list(common.VOC_CLASSNAMES)))
