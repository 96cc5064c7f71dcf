"""Hand-crafted prompt templates per method, keyed by dataset name (``DATASET.NAME``).

Each method uses its own upstream table (``method_templates``) for its zero-shot features and
those of the regularizers trained with it (as TCPT's fork does): :data:`COOP_TEMPLATES` (CoOp
ff61507 ``trainers/zsclip.py`` ``CUSTOM_TEMPLATES``, carried unchanged by the CoCoOp/MaPLe forks
and TCPT 729232f's CoOp and MaPLe trainers) for every method but KgCoOp, whose
:data:`KGCOOP_TEMPLATES` (c43ccc3 ``trainers/kgcoop.py`` line 37, also TCPT's) differ for DTD.
TaI-DPT (1333eca) has no table; it and unlisted datasets use :data:`DEFAULT_TEMPLATE`.
``ENSEMBLE_TEMPLATES``: CLIP's seven ImageNet ensembling templates (``TRAINER.ZSCLIP.ENSEMBLE``).
Every template has exactly one ``{}`` for the class name (underscores in class names become spaces).
"""

DEFAULT_TEMPLATE = "a photo of a {}."

COOP_TEMPLATES = {
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

KGCOOP_TEMPLATES = {**COOP_TEMPLATES, "DescribableTextures": "a photo of a {}, a type of texture."}

# kept for callers of the single-table API: CoOp's table
DATASET_TEMPLATES = COOP_TEMPLATES

# trainer name (TRAINER.NAME) -> (table, where upstream defines it); unlisted trainers use CoOp's
METHOD_TEMPLATES = {
    "KgCoOp": (KGCOOP_TEMPLATES, "KgCoOp c43ccc3 trainers/kgcoop.py CUSTOM_TEMPLATES"),
    "TaIDPT": ({}, "TaI-DPT 1333eca (no table; default template)"),
}
_COOP_SOURCE = "CoOp ff61507 trainers/zsclip.py CUSTOM_TEMPLATES"

ENSEMBLE_TEMPLATES = [
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
]


def method_templates(method=""):
    """``(table, source)`` of the hand-crafted templates of trainer ``method`` (CoOp's by default)."""
    return METHOD_TEMPLATES.get(method, (COOP_TEMPLATES, _COOP_SOURCE))


def trainer_method(trainer_cls):
    """The template-table key of a trainer class: the first class of its MRO with its own table."""
    return next((c.__name__ for c in trainer_cls.__mro__ if c.__name__ in METHOD_TEMPLATES), "")


def get_template(dataset_name, override="", method=""):
    """The single template of ``method`` (trainer name) for ``dataset_name``; ``override`` (e.g.
    TRAINER.ZSCLIP.TEMPLATE) wins; datasets the table lacks get :data:`DEFAULT_TEMPLATE`."""
    if override:
        if not isinstance(override, str) or override.count("{}") != 1:
            raise ValueError(f"template override: a template needs exactly one '{{}}' for the class name, "
                             f"got {override!r}")
        return override
    return method_templates(method)[0].get(dataset_name, DEFAULT_TEMPLATE)


def get_ensemble_templates(dataset_name, override=""):
    """Templates for a prompt ensemble: the ensemble list plus the dataset's own template
    (ImageNet variants use the ensemble list only, as CLIP did)."""
    templates = list(ENSEMBLE_TEMPLATES)
    own = get_template(dataset_name, override)
    if not dataset_name.startswith("ImageNet") and own not in templates:
        templates.append(own)
    return templates
