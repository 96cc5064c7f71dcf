"""Oxford-IIIT Pets (CoOp layout): 37 breeds, base/new 19/18.

Split: ``split_zhou_OxfordPets.json`` if present, else built from the official
``annotations/{trainval,test}.txt`` (lines ``<Image_name> <class id 1..37> <species> <breed id>``; class
name = the image name without its trailing number, lower-cased; 80/20 train/val), saved to the cache.
"""
import os

from ..engine.data import DATASET_REGISTRY, Datum
from .common import read_lines
from .splits import SplitBenchmark, split_trainval


@DATASET_REGISTRY.register()
class OxfordPets(SplitBenchmark):
    dataset_dir, image_subdir = "oxford_pets", "images"
    LAYOUT = """\
oxford_pets/
  images/<Breed_name>_<n>.jpg ...
  annotations/trainval.txt, annotations/test.txt
  split_zhou_OxfordPets.json        (CoOp's split; optional, built into the cache if absent)"""

    def read(self, path, image_dir):
        items = []
        for i, line in enumerate(read_lines(path)):
            if line.startswith("#"):
                continue
            parts = line.split()
            try:
                imname, label = parts[0], int(parts[1]) - 1
            except (IndexError, ValueError):
                self.fail(f"{path} line {i + 1}: expected '<image name> <class id> ...', got {line!r}")
            breed = "_".join(imname.split("_")[:-1]).lower()
            items.append(Datum(os.path.join(image_dir, imname + ".jpg"), label, 0, breed))
        return items

    def build(self, cfg, ddir, image_dir):
        trainval, test = (self.read(p, image_dir) for p in self.need(
            cfg, ddir, *(os.path.join(ddir, "annotations", f) for f in ("trainval.txt", "test.txt"))))
        train, val = split_trainval(trainval, p_val=0.2)
        s = self.checked(cfg, {"train": train, "val": val, "test": test}, "annotations/*.txt")
        return s["train"], s["val"], s["test"]
