"""VOC-LT (long-tailed multi-label; Wu et al., ECCV 2020): 20 classes, base/new 10/10.

Train: the 1,142 VOC2012-trainval images of the released id list, labelled from VOC2012's
``ImageSets/Main/<cls>_trainval.txt``; test: VOC2007 test (4,952). "Difficult" as in VOC2007
(``DATASET.VOC_DIFFICULT``, default "ignore" -> -1). ``groups``: head (>= 100 training images),
medium (20-99), tail (< 20), counted on the full long-tailed train set before few-shot
sampling (6/6/8 classes), indexed in the classes kept by ``SUBSAMPLE_CLASSES``.
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY

NAME = "VOCLT"
LAYOUT = """\
VOCdevkit/
  VOC2012/JPEGImages/2008_000008.jpg ...,  VOC2012/ImageSets/Main/<class>_trainval.txt
  VOC2007/JPEGImages/000001.jpg ...,       VOC2007/ImageSets/Main/<class>_test.txt
  longtail2012/img_id.txt           (one VOC2012 image id per line, as released with the
                                     distribution-balanced loss code, appendix/VOCdevkit/longtail2012/)
coco/annotations/captions_train2017.json   (only for caption training)"""


@DATASET_REGISTRY.register()
class VOCLT(common.MultiLabelDataset):
    dataset_dir = "VOCdevkit"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        voc12 = common.require_dir(os.path.join(ddir, "VOC2012"), NAME, LAYOUT, "VOC2012 folder")
        voc07 = common.require_dir(os.path.join(ddir, "VOC2007"), NAME, LAYOUT, "VOC2007 folder")
        self.caption_files = common.coco_caption_files(root)
        common.require_captions_if_needed(cfg, self.caption_files, NAME, LAYOUT)
        difficult = common.voc_difficult_value(cfg)
        ids = common.read_id_list(os.path.join(ddir, "longtail2012"), NAME, LAYOUT)
        train = common.voc_items(voc12, "trainval", difficult, NAME, LAYOUT, ids=ids)
        test = common.voc_items(voc07, "test", difficult, NAME, LAYOUT)
        s = common.check_files_exist({"train": train, "test": test}, NAME, "the id list / ImageSets",
                                     bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False)))
        groups = common.lt_groups(s["train"], cfg.DATASET.SUBSAMPLE_CLASSES)
        super().__init__(**common.finish_multilabel(cfg, NAME, s["train"], s["test"], list(common.VOC_CLASSNAMES),
                                                    groups))
