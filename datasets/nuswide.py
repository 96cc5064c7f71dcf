"""NUS-WIDE multi-label: 81 concepts (order of ``Concepts81.txt``), base/new 41/40.

Train/test from ``ImageList/{Train,Test}Imagelist.txt`` (Windows paths such as
``actor\\0001_2124494179.jpg``, or with a ``...\\Flickr\\`` prefix; read relative to ``Flickr/``)
and ``TrainTestLabels/Labels_<concept>_{Train,Test}.txt`` (one 0/1 per line, aligned with the
image list). Images without any positive concept are left out (the usual protocol). No val split.
``captions()`` labels COCO captions with the 81 concepts (TaI-DPT).
"""
import os

import numpy as np

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, Datum

NAME = "NUSWIDE"
LAYOUT = """\
nuswide/
  Concepts81.txt                    (81 concept names, one per line)
  ImageList/TrainImagelist.txt, ImageList/TestImagelist.txt
  TrainTestLabels/Labels_<concept>_Train.txt, Labels_<concept>_Test.txt   (81 x 2 files)
  Flickr/<folder>/<image>.jpg       (e.g. Flickr/actor/0001_2124494179.jpg)
coco/annotations/captions_train2017.json   (only for caption training)"""


def _relpath(line):
    p = line.strip().replace("\\", "/")
    if "Flickr/" in p:
        p = p.split("Flickr/")[-1]
    return p.lstrip("/")


@DATASET_REGISTRY.register()
class NUSWIDE(common.MultiLabelDataset):
    dataset_dir = "nuswide"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        self.caption_files = common.coco_caption_files(root)
        common.require_captions_if_needed(cfg, self.caption_files, NAME, LAYOUT)
        concepts = common.read_lines(common.require_file(os.path.join(ddir, "Concepts81.txt"), NAME, LAYOUT,
                                                         "concept list"))
        image_dir = common.require_dir(os.path.join(ddir, "Flickr"), NAME, LAYOUT, "image folder")
        splits = {}
        for split, tag in (("train", "Train"), ("test", "Test")):
            lst = common.require_file(os.path.join(ddir, "ImageList", f"{tag}Imagelist.txt"), NAME, LAYOUT,
                                      "image list")
            paths = [_relpath(ln) for ln in common.read_lines(lst)]
            labels = np.zeros((len(paths), len(concepts)), dtype=np.int8)
            for c, concept in enumerate(concepts):
                f = common.require_file(os.path.join(ddir, "TrainTestLabels", f"Labels_{concept}_{tag}.txt"), NAME,
                                        LAYOUT, "label file")
                with open(f, "r") as fh:
                    col = fh.read().split()
                if len(col) != len(paths) or any(v not in ("0", "1") for v in set(col)):
                    common.fail(NAME, f"{f} must hold one 0/1 per line for each of the {len(paths)} images in "
                                      f"{lst}; found {len(col)} values", LAYOUT)
                labels[:, c] = np.asarray(col, dtype=np.int8)
            keep = np.flatnonzero(labels.max(1) == 1) if len(paths) else []
            splits[split] = [Datum(os.path.join(image_dir, paths[i]), labels[i].copy(), 0, "") for i in keep]
        s = common.check_files_exist(splits, NAME, "ImageList/*Imagelist.txt",
                                     bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False)))
        super().__init__(**common.finish_multilabel(cfg, NAME, s["train"], s["test"], concepts))
