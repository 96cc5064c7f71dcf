"""Synonym files for caption labelling (TaI-DPT's text training), registered by dataset name.

The files in ``datasets/data/`` were written for this project; trainers find them through
``engine.data.captions.synonyms_for(DATASET.NAME)`` (``TRAINER.TAIDPT.SYNONYMS`` names another file).
"""
import os

from ..engine.data.captions import register_synonyms

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

SYNONYM_FILES = {
    "COCO2014": "synonyms_coco.json",
    "COCO2017": "synonyms_coco.json",
    "COCOLT": "synonyms_coco.json",
    "VOC2007": "synonyms_voc.json",
    "VOCLT": "synonyms_voc.json",
    "NUSWIDE": "synonyms_nuswide.json",
    "ShapeWorld": "synonyms_shapeworld.json",
    "ShapeWorldML": "synonyms_shapeworld.json",
    "ShapeWorldRender": "synonyms_shapeworld.json",
}

for _name, _file in SYNONYM_FILES.items():
    register_synonyms(_name, os.path.join(DATA_DIR, _file))
