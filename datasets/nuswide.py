"""NUS-WIDE multi-label: 81 concepts (order of ``Concepts81.txt``), base/new 41/40.

Train/test from ``ImageList/{Train,Test}Imagelist.txt`` (Windows paths such as
``actor\\0001_2124494179.jpg``, or with a ``...\\Flickr\\`` prefix; read relative to ``Flickr/``)
and ``TrainTestLabels/Labels_<concept>_{Train,Test}.txt`` (one 0/1 per line, aligned with the
image list). Images without any positive concept are left out (the usual protocol). No val split.
"""
import os

import numpy as np

from ..engine.data import DATASET_REGISTRY, Datum
from .common import read_lines
from .multilabel import MultiLabelBenchmark


def _relpath(line):
    p = line.strip().replace("\\", "/")
    if "Flickr/" in p:
        p = p.split("Flickr/")[-1]
    return p.lstrip("/")


@DATASET_REGISTRY.register()
class NUSWIDE(MultiLabelBenchmark):
    synonyms_file = "synonyms_nuswide.json"
    dataset_dir = "nuswide"
    LAYOUT = """\
nuswide/
  Concepts81.txt                    (81 concept names, one per line)
  ImageList/TrainImagelist.txt, ImageList/TestImagelist.txt
  TrainTestLabels/Labels_<concept>_Train.txt, Labels_<concept>_Test.txt   (81 x 2 files)
  Flickr/<folder>/<image>.jpg       (e.g. Flickr/actor/0001_2124494179.jpg)
coco/annotations/captions_train2017.json   (only for caption training)"""

    def load(self, cfg, root, ddir):
        self.check_captions(cfg)
        concepts = read_lines(self.require_file(os.path.join(ddir, "Concepts81.txt"), "concept list"))
        image_dir = self.require_dir(os.path.join(ddir, "Flickr"), "image folder")
        splits = {}
        for split, tag in (("train", "Train"), ("test", "Test")):
            lst = self.require_file(os.path.join(ddir, "ImageList", f"{tag}Imagelist.txt"), "image list")
            paths = [_relpath(ln) for ln in read_lines(lst)]
            labels = np.zeros((len(paths), len(concepts)), dtype=np.int8)
            for c, concept in enumerate(concepts):
                f = self.require_file(os.path.join(ddir, "TrainTestLabels", f"Labels_{concept}_{tag}.txt"),
                                      "label file")
                with open(f, "r") as fh:
                    col = fh.read().split()
                if len(col) != len(paths) or any(v not in ("0", "1") for v in set(col)):
                    self.fail(f"{f} must hold one 0/1 per line for each of the {len(paths)} images in "
                              f"{lst}; found {len(col)} values")
                labels[:, c] = np.asarray(col, dtype=np.int8)
            keep = np.flatnonzero(labels.max(1) == 1) if len(paths) else []
            splits[split] = [Datum(os.path.join(image_dir, paths[i]), labels[i].copy(), 0, "") for i in keep]
        return self.finish(cfg, splits, concepts, "ImageList/*Imagelist.txt")
