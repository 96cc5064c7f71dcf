"""Oxford-IIIT Pets (CoOp layout): 37 breeds, base/new 19/18.

Split: ``split_zhou_OxfordPets.json`` if present, else built from the official
``annotations/{trainval,test}.txt`` (lines ``<Image_name> <class id 1..37> <species> <breed id>``;
class name = the image name without its trailing number, lower-cased) with an 80/20
train/val split of trainval, saved to the cache.
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, Datum, DatasetBase

NAME = "OxfordPets"
LAYOUT = """\
oxford_pets/
  images/<Breed_name>_<n>.jpg ...
  annotations/trainval.txt, annotations/test.txt
  split_zhou_OxfordPets.json        (CoOp's split; optional, built into the cache if absent)"""


def _read(path, image_dir):
    items = []
    for i, line in enumerate(common.read_lines(path)):
        if line.startswith("#"):
            continue
        parts = line.split()
        try:
            imname, label = parts[0], int(parts[1]) - 1
        except (IndexError, ValueError):
            common.fail(NAME, f"{path} line {i + 1}: expected '<image name> <class id> ...', got {line!r}", LAYOUT)
        breed = "_".join(imname.split("_")[:-1]).lower()
        items.append(Datum(os.path.join(image_dir, imname + ".jpg"), label, 0, breed))
    return items


@DATASET_REGISTRY.register()
class OxfordPets(DatasetBase):
    dataset_dir = "oxford_pets"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        image_dir = os.path.join(ddir, "images")
        anno_dir = os.path.join(ddir, "annotations")

        def build():
            for f in ("trainval.txt", "test.txt"):
                if not os.path.isfile(os.path.join(anno_dir, f)):
                    common.fail(NAME, common.no_split_message(cfg, NAME, ddir, os.path.join(anno_dir, f)), LAYOUT)
            trainval = _read(os.path.join(anno_dir, "trainval.txt"), image_dir)
            test = _read(os.path.join(anno_dir, "test.txt"), image_dir)
            train, val = common.split_trainval(trainval, p_val=0.2)
            s = common.check_files_exist({"train": train, "val": val, "test": test}, NAME, "annotations/*.txt",
                                         bool(cfg.DATASET.get("SKIP_MISSING_IMAGES", False)))
            return s["train"], s["val"], s["test"]

        train, val, test, classnames = common.split_or_build(cfg, NAME, ddir, image_dir, build)
        super().__init__(**common.finish_single_label(cfg, NAME, train, val, test, classnames))
