"""The benchmarks whose split CoOp builds from class folders (``splits.FolderBenchmark``): CoOp's
``split_zhou_<Name>.json`` when present, else a 50/20/30 per-class split, saved to the cache."""
from ..engine.data import DATASET_REGISTRY
from .splits import FolderBenchmark


@DATASET_REGISTRY.register()
class Caltech101(FolderBenchmark):
    """Caltech-101: 100 classes, base/new 50/50 (``BACKGROUND_Google`` and ``Faces_easy`` ignored;
    four folders renamed to singular names as CoOp does)."""

    dataset_dir, image_subdir = "caltech-101", "101_ObjectCategories"
    LAYOUT = """\
caltech-101/
  101_ObjectCategories/<class>/image_0001.jpg ...
  split_zhou_Caltech101.json        (CoOp's split; optional, built into the cache if absent)"""
    IGNORED = ("BACKGROUND_Google", "Faces_easy")
    NEW_CNAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}


@DATASET_REGISTRY.register()
class DescribableTextures(FolderBenchmark):
    """Describable Textures: 47 classes, base/new 24/23."""

    dataset_dir, image_subdir = "dtd", "images"
    LAYOUT = """\
dtd/
  images/<class>/<class>_0001.jpg ...
  split_zhou_DescribableTextures.json   (CoOp's split; optional, built into the cache if absent)"""


@DATASET_REGISTRY.register()
class EuroSAT(FolderBenchmark):
    """EuroSAT RGB: 10 classes with CoOp's long names (AnnualCrop -> "Annual Crop Land"), base/new 5/5."""

    dataset_dir, image_subdir = "eurosat", "2750"
    LAYOUT = """\
eurosat/
  2750/<class>/<class>_1.jpg ...    (AnnualCrop, Forest, HerbaceousVegetation, Highway, Industrial,
                                     Pasture, PermanentCrop, Residential, River, SeaLake)
  split_zhou_EuroSAT.json           (CoOp's split; optional, built into the cache if absent)"""
    NEW_CNAMES = {
        "AnnualCrop": "Annual Crop Land",
        "HerbaceousVegetation": "Herbaceous Vegetation Land",
        "Highway": "Highway or Road",
        "Industrial": "Industrial Buildings",
        "Pasture": "Pasture Land",
        "PermanentCrop": "Permanent Crop Land",
        "Residential": "Residential Buildings",
        "SeaLake": "Sea or Lake",
    }


@DATASET_REGISTRY.register()
class Food101(FolderBenchmark):
    """Food-101: 101 classes, base/new 51/50 (as CoOp, the official meta/ lists are not used)."""

    dataset_dir, image_subdir = "food-101", "images"
    LAYOUT = """\
food-101/
  images/<class>/<id>.jpg ...       (e.g. images/apple_pie/1005649.jpg)
  split_zhou_Food101.json           (CoOp's split; optional, built into the cache if absent)"""
