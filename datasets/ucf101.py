"""UCF101 middle frames (CoOp layout): 101 actions, base/new 51/50.

Split: ``split_zhou_UCF101.json`` if present, else built from ``ucfTrainTestlist/``
(``classInd.txt``, ``trainlist01.txt``, ``testlist01.txt``; 80/20 train/val of trainlist01),
saved to the cache. Frames live in ``UCF-101-midframes/<Action_Name>/<video>.jpg`` where the
folder (and the class name) splits the CamelCase action at capitals with underscores
("ApplyEyeMakeup" -> "Apply_Eye_Makeup").
"""
import os
import re

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, Datum, DatasetBase

NAME = "UCF101"
LAYOUT = """\
ucf101/
  UCF-101-midframes/Apply_Eye_Makeup/v_ApplyEyeMakeup_g01_c01.jpg ...
  split_zhou_UCF101.json            (CoOp's split; optional if ucfTrainTestlist/ is there)
  ucfTrainTestlist/classInd.txt, trainlist01.txt, testlist01.txt"""


def renamed_action(action):
    return "_".join(re.findall("[A-Z][^A-Z]*", action)) or action


@DATASET_REGISTRY.register()
class UCF101(DatasetBase):
    dataset_dir = "ucf101"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        image_dir = os.path.join(ddir, "UCF-101-midframes")

        def build():
            lists = os.path.join(ddir, "ucfTrainTestlist")
            files = [os.path.join(lists, f) for f in ("classInd.txt", "trainlist01.txt", "testlist01.txt")]
            for p in files:
                if not os.path.isfile(p):
                    common.fail(NAME, common.no_split_message(cfg, NAME, ddir, p), LAYOUT)
            cname2lab = {}
            for line in common.read_lines(files[0]):
                label, action = line.split()
                cname2lab[action] = int(label) - 1

            def read(path):
                items = []
                for i, line in enumerate(common.read_lines(path)):
                    rel = line.split()[0].replace("\\", "/")
                    action, fname = rel.split("/")[-2:]
                    if action not in cname2lab:
                        common.fail(NAME, f"{path} line {i + 1}: action {action!r} is not in classInd.txt", LAYOUT)
                    folder = renamed_action(action)
                    impath = os.path.join(image_dir, folder, os.path.splitext(fname)[0] + ".jpg")
                    items.append(Datum(impath, cname2lab[action], 0, folder))
                return items

            trainval, test = read(files[1]), read(files[2])
            train, val = common.split_trainval(trainval, p_val=0.2)
            s = common.check_files_exist({"train": train, "val": val, "test": test}, NAME, "ucfTrainTestlist",
                                         bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False)))
            return s["train"], s["val"], s["test"]

        train, val, test, classnames = common.split_or_build(cfg, NAME, ddir, image_dir, build)
        super().__init__(**common.finish_single_label(cfg, NAME, train, val, test, classnames))
