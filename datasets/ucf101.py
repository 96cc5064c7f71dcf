"""UCF101 middle frames (CoOp layout): 101 actions, base/new 51/50.

Split: ``split_zhou_UCF101.json`` if present, else built from ``ucfTrainTestlist/`` (80/20 train/val
of trainlist01), saved to the cache. The frame folder and the class name split the CamelCase action
at capitals with underscores ("ApplyEyeMakeup" -> "Apply_Eye_Makeup").
"""
import os
import re

from ..engine.data import DATASET_REGISTRY, Datum
from .common import read_lines
from .splits import SplitBenchmark, split_trainval


def renamed_action(action):
    return "_".join(re.findall("[A-Z][^A-Z]*", action)) or action


@DATASET_REGISTRY.register()
class UCF101(SplitBenchmark):
    dataset_dir, image_subdir = "ucf101", "UCF-101-midframes"
    LAYOUT = """\
ucf101/
  UCF-101-midframes/Apply_Eye_Makeup/v_ApplyEyeMakeup_g01_c01.jpg ...
  split_zhou_UCF101.json            (CoOp's split; optional if ucfTrainTestlist/ is there)
  ucfTrainTestlist/classInd.txt, trainlist01.txt, testlist01.txt"""

    def build(self, cfg, ddir, image_dir):
        lists = os.path.join(ddir, "ucfTrainTestlist")
        class_ind, trainlist, testlist = self.need(cfg, ddir, *(os.path.join(lists, f) for f in
                                                                ("classInd.txt", "trainlist01.txt", "testlist01.txt")))
        cname2lab = {action: int(label) - 1 for label, action in (ln.split() for ln in read_lines(class_ind))}

        def read(path):
            items = []
            for i, line in enumerate(read_lines(path)):
                action, fname = line.split()[0].replace("\\", "/").split("/")[-2:]
                if action not in cname2lab:
                    self.fail(f"{path} line {i + 1}: action {action!r} is not in classInd.txt")
                folder = renamed_action(action)
                impath = os.path.join(image_dir, folder, os.path.splitext(fname)[0] + ".jpg")
                items.append(Datum(impath, cname2lab[action], 0, folder))
            return items

        train, val = split_trainval(read(trainlist), p_val=0.2)
        s = self.checked(cfg, {"train": train, "val": val, "test": read(testlist)}, "ucfTrainTestlist")
        return s["train"], s["val"], s["test"]
