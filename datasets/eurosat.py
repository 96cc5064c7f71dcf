"""EuroSAT RGB (CoOp layout): 10 classes with CoOp's long names, base/new 5/5.

Split: ``split_zhou_EuroSAT.json`` if present, else a 50/20/30 per-class split of
``2750/<class>/`` renamed with ``NEW_CNAMES`` (e.g. AnnualCrop -> "Annual Crop Land"),
saved to the cache.
"""
import os

from cpt.datasets import common
from cpt.engine.data import DATASET_REGISTRY, DatasetBase

NAME = "EuroSAT"
LAYOUT = """\
eurosat/
  2750/<class>/<class>_1.jpg ...    (AnnualCrop, Forest, HerbaceousVegetation, Highway, Industrial,
                                     Pasture, PermanentCrop, Residential, River, SeaLake)
  split_zhou_EuroSAT.json           (CoOp's split; optional, built into the cache if absent)"""
NEW_CNAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}


@DATASET_REGISTRY.register()
class EuroSAT(DatasetBase):
    dataset_dir = "eurosat"

    def __init__(self, cfg):
        root = common.dataset_root(cfg, NAME, LAYOUT)
        ddir = common.require_dir(os.path.join(root, self.dataset_dir), NAME, LAYOUT, "dataset folder")
        image_dir = os.path.join(ddir, "2750")

        def build():
            if not os.path.isdir(image_dir):
                common.fail(NAME, common.no_split_message(cfg, NAME, ddir, image_dir), LAYOUT)
            return common.read_and_split_folders(image_dir, NAME, LAYOUT, new_cnames=NEW_CNAMES)

        train, val, test, classnames = common.split_or_build(cfg, NAME, ddir, image_dir, build)
        super().__init__(**common.finish_single_label(cfg, NAME, train, val, test, classnames))
