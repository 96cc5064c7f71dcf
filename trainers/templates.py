"""Hand-crafted prompt templates keyed by dataset name (``DATASET.NAME``).

A method's table is data on its trainer class, ``templates = (table, source)``: used for its zero-shot
features and those of the regularizers trained with it (as TCPT's fork does). The default,
:data:`DEFAULT_TABLE`, is the table the forks share (CoOp ff61507 ``trainers/zsclip.py``
``CUSTOM_TEMPLATES``, carried unchanged by the CoCoOp/MaPLe forks and TCPT 729232f's CoOp and MaPLe
trainers); a method with its own table (KgCoOp, TaI-DPT) declares it in its module. Datasets a table
lacks use :data:`DEFAULT_TEMPLATE`. ``ENSEMBLE_TEMPLATES``: CLIP's seven ImageNet ensembling
templates (``TRAINER.ZSCLIP.ENSEMBLE``). Every template has exactly one ``{}`` for the class name
(underscores in class names become spaces).
"""
DEFAULT_TEMPLATE = "a photo of a {}."

DATASET_TEMPLATES = {
    "OxfordPets": "a photo of a {}, a type of pet.",
    "OxfordFlowers": "a photo of a {}, a type of flower.",
    "FGVCAircraft": "a photo of a {}, a type of aircraft.",
    "DescribableTextures": "{} texture.",
    "EuroSAT": "a centered satellite photo of {}.",
    "StanfordCars": "a photo of a {}.",
    "Food101": "a photo of {}, a type of food.",
    "SUN397": "a photo of a {}.",
    "Caltech101": "a photo of a {}.",
    "UCF101": "a photo of a person doing {}.",
    "ImageNet": "a photo of a {}.",
    "ImageNetSketch": "a photo of a {}.",
    "ImageNetV2": "a photo of a {}.",
    "ImageNetA": "a photo of a {}.",
    "ImageNetR": "a photo of a {}.",
}

# (table, where upstream defines it): the trainers' default ``templates``
DEFAULT_TABLE = (DATASET_TEMPLATES, "CUSTOM_TEMPLATES of the forks, ff61507")

ENSEMBLE_TEMPLATES = [
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
]


def get_template(dataset_name, override="", table=None):
    """The single template of ``table`` (default :data:`DATASET_TEMPLATES`) for ``dataset_name``;
    ``override`` (e.g. TRAINER.ZSCLIP.TEMPLATE) wins; datasets the table lacks get :data:`DEFAULT_TEMPLATE`."""
    if override:
        if not isinstance(override, str) or override.count("{}") != 1:
            raise ValueError(f"template override: a template needs exactly one '{{}}' for the class name, "
                             f"got {override!r}")
        return override
    return (DATASET_TEMPLATES if table is None else table).get(dataset_name, DEFAULT_TEMPLATE)


def get_ensemble_templates(dataset_name, override=""):
    """Templates for a prompt ensemble: the ensemble list plus the dataset's own template
    (ImageNet variants use the ensemble list only, as CLIP did)."""
    templates = list(ENSEMBLE_TEMPLATES)
    own = get_template(dataset_name, override)
    if not dataset_name.startswith("ImageNet") and own not in templates:
        templates.append(own)
    return templates
