"""PASCAL VOC multi-label benchmarks: VOC2007 and VOC-LT (20 classes in the usual order).

Labels come from ``ImageSets/Main/<cls>_<split>.txt`` (``<id> 1|-1|0``): 1 -> positive (1),
-1 -> negative (0), 0 ("difficult": only difficult instances of the class) ->
``DATASET.VOC_DIFFICULT``: "ignore" (default) -> -1 (no loss, not scored), "positive" -> 1,
"negative" -> 0. Class names are prompt-friendly ("dining table", "potted plant", "tv monitor").
"""
import os

import numpy as np

from ..engine.data import DATASET_REGISTRY, Datum
from .common import lt_groups, preview, read_lines
from .multilabel import MultiLabelBenchmark

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
_PROMPT_NAMES = {"diningtable": "dining table", "pottedplant": "potted plant", "tvmonitor": "tv monitor"}
VOC_CLASSNAMES = [_PROMPT_NAMES.get(c, c) for c in VOC_CLASSES]  # prompt-friendly, same order (index = label)
VOC_DIFFICULT_VALUES = {"ignore": -1, "positive": 1, "negative": 0}


class _VOC(MultiLabelBenchmark):
    config_keys = {"VOC_DIFFICULT": "ignore"}  # DATASET.VOC_DIFFICULT (module docstring)
    synonyms_file = "synonyms_voc.json"

    def difficult(self, cfg):
        mode = str(cfg.DATASET.get("VOC_DIFFICULT", self.config_keys["VOC_DIFFICULT"])).lower()
        if mode not in VOC_DIFFICULT_VALUES:
            raise ValueError(f"DATASET.VOC_DIFFICULT must be one of {sorted(VOC_DIFFICULT_VALUES)}, got {mode!r}")
        return VOC_DIFFICULT_VALUES[mode]

    def read_imagesets(self, voc_dir, split, difficult):
        """Ordered dict image id -> int8 vector over ``VOC_CLASSES`` of a VOC ``split``; an id absent
        from a class file gets -1 (unknown). Image order is that of ``<split>.txt`` when present,
        else of the first class file."""
        main = self.require_dir(os.path.join(voc_dir, "ImageSets", "Main"), "ImageSets/Main folder")
        table = {}
        for c, cls in enumerate(VOC_CLASSES):
            path = self.require_file(os.path.join(main, f"{cls}_{split}.txt"), "class label list")
            for i, line in enumerate(read_lines(path)):
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("1", "-1", "0"):
                    self.fail(f"{path} line {i + 1}: expected '<image id> <1|-1|0>', got {line!r}")
                row = table.get(parts[0])
                if row is None:
                    row = table[parts[0]] = np.full(len(VOC_CLASSES), -1, dtype=np.int8)
                row[c] = {"1": 1, "-1": 0, "0": difficult}[parts[1]]
        split_list = os.path.join(main, f"{split}.txt")
        order = [ln.split()[0] for ln in read_lines(split_list)] if os.path.isfile(split_list) else list(table)
        return {i: table.get(i, np.full(len(VOC_CLASSES), -1, dtype=np.int8)) for i in order}

    def items(self, voc_dir, split, difficult, ids=None):
        """Items of a VOC split: ``JPEGImages/<id>.jpg``; ``ids``: an ordered subset (unknown ids fail)."""
        table = self.read_imagesets(voc_dir, split, difficult)
        if ids is not None:
            missing = [i for i in ids if i not in table]
            if missing:
                self.fail(f"{len(missing)} image id(s) of the id list are not in ImageSets/Main/*_{split}.txt of "
                          f"{voc_dir}: {preview(missing)}")
            table = {i: table[i] for i in ids}
        jpeg = self.require_dir(os.path.join(voc_dir, "JPEGImages"), "JPEGImages folder")
        return [Datum(os.path.join(jpeg, f"{i}.jpg"), v, 0, "") for i, v in table.items()]


@DATASET_REGISTRY.register()
class VOC2007(_VOC):
    """VOC 2007: train from ``trainval`` (5,011 images), test from ``test`` (4,952); all listed
    images kept; no val split; base/new 10/10."""

    dataset_dir = os.path.join("VOCdevkit", "VOC2007")
    LAYOUT = """\
VOCdevkit/VOC2007/
  JPEGImages/000005.jpg ...
  ImageSets/Main/<class>_trainval.txt, ImageSets/Main/<class>_test.txt   (20 classes each)
  (Annotations/ is not read)
coco/annotations/captions_train2017.json   (only for caption training)"""

    def load(self, cfg, root, voc):
        self.check_captions(cfg)
        difficult = self.difficult(cfg)
        splits = {"train": self.items(voc, "trainval", difficult), "test": self.items(voc, "test", difficult)}
        return self.finish(cfg, splits, list(VOC_CLASSNAMES), "ImageSets/Main")


@DATASET_REGISTRY.register()
class VOCLT(_VOC):
    """VOC-LT (long-tailed multi-label; Wu et al., ECCV 2020): 20 classes, base/new 10/10.

    Train: the 1,142 VOC2012-trainval images of the released id list, labelled from VOC2012's
    ``ImageSets/Main/<cls>_trainval.txt``; test: VOC2007 test (4,952). ``groups``: head/medium/tail
    (``common.lt_groups``; 6/6/8 classes).
    """

    dataset_dir = "VOCdevkit"
    LAYOUT = """\
VOCdevkit/
  VOC2012/JPEGImages/2008_000008.jpg ...,  VOC2012/ImageSets/Main/<class>_trainval.txt
  VOC2007/JPEGImages/000001.jpg ...,       VOC2007/ImageSets/Main/<class>_test.txt
  longtail2012/img_id.txt           (one VOC2012 image id per line, as released with the
                                     distribution-balanced loss code, appendix/VOCdevkit/longtail2012/)
coco/annotations/captions_train2017.json   (only for caption training)"""

    def load(self, cfg, root, ddir):
        voc12 = self.require_dir(os.path.join(ddir, "VOC2012"), "VOC2012 folder")
        voc07 = self.require_dir(os.path.join(ddir, "VOC2007"), "VOC2007 folder")
        self.check_captions(cfg)
        difficult = self.difficult(cfg)
        ids = self.read_id_list(os.path.join(ddir, "longtail2012"))
        splits = {"train": self.items(voc12, "trainval", difficult, ids=ids),
                  "test": self.items(voc07, "test", difficult)}
        return self.finish(cfg, splits, list(VOC_CLASSNAMES), "the id list / ImageSets",
                           lambda train: lt_groups(train, cfg.DATASET.SUBSAMPLE_CLASSES))
