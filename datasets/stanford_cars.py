"""Stanford Cars (CoOp layout): 196 classes, base/new 98/98.

Split: ``split_zhou_StanfordCars.json`` if present, else built from the devkit's ``.mat`` annotations
(80/20 train/val of the official train; class names with the year moved to the front, "AM General
Hummer SUV 2000" -> "2000 AM General Hummer SUV"), saved to the cache.
"""
import os

from ..engine.data import DATASET_REGISTRY, Datum
from .splits import SplitBenchmark, split_trainval


def _mat_str(x):
    while hasattr(x, "shape") and x.shape != () and getattr(x, "size", 0) >= 1 and x.dtype.kind in "OU":
        if x.dtype.kind == "U":
            return str(x.reshape(-1)[0])
        x = x.reshape(-1)[0]
    return str(x)


@DATASET_REGISTRY.register()
class StanfordCars(SplitBenchmark):
    dataset_dir = "stanford_cars"
    LAYOUT = """\
stanford_cars/
  cars_train/00001.jpg ...   cars_test/00001.jpg ...
  split_zhou_StanfordCars.json              (CoOp's split; optional if the devkit is there)
  devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat"""

    def read(self, ddir, image_folder, anno_file, meta_file):
        from scipy.io import loadmat

        try:
            annos = loadmat(anno_file)["annotations"][0]
            meta = loadmat(meta_file)["class_names"][0]
            items = []
            for a in annos:
                label = int(a["class"].reshape(-1)[0]) - 1
                cname = _mat_str(meta[label]).split(" ")
                cname = " ".join([cname[-1]] + cname[:-1])
                items.append(Datum(os.path.join(ddir, image_folder, _mat_str(a["fname"])), label, 0, cname))
        except (KeyError, IndexError, ValueError) as e:
            self.fail(f"cannot read {anno_file} / {meta_file} ({type(e).__name__}: {e})")
        return items

    def build(self, cfg, ddir, image_dir):
        train_annos, test_annos, meta = self.need(cfg, ddir, os.path.join(ddir, "devkit", "cars_train_annos.mat"),
                                                  os.path.join(ddir, "cars_test_annos_withlabels.mat"),
                                                  os.path.join(ddir, "devkit", "cars_meta.mat"))
        train, val = split_trainval(self.read(ddir, "cars_train", train_annos, meta), p_val=0.2)
        test = self.read(ddir, "cars_test", test_annos, meta)
        s = self.checked(cfg, {"train": train, "val": val, "test": test}, "the devkit annotations")
        return s["train"], s["val"], s["test"]
