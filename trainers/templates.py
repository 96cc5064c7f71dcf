"""Hand-crafted prompt templates keyed by dataset name (``DATASET.NAME``).

``DATASET_TEMPLATES``: CoOp's single template per benchmark (used by ZeroshotCLIP, and as the
hand-crafted prompt of KgCoOp and of the calibration regularizers' zero-shot features).
Datasets not listed (the offline world, user datasets) use :data:`DEFAULT_TEMPLATE`.
``ENSEMBLE_TEMPLATES``: the seven ImageNet templates CLIP selected for prompt ensembling, used by
ZeroshotCLIP with ``TRAINER.ZSCLIP.ENSEMBLE True`` (together with the dataset's own template).
Every template has exactly one ``{}`` for the class name.
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
    # the offline world: made-up one-token class names
    "ShapeWorld": "a photo of a {}.",
    "ShapeWorldML": "a photo of a {}.",
}

ENSEMBLE_TEMPLATES = [
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
]


def _check(template, where):
    if not isinstance(template, str) or template.count("{}") != 1:
        raise ValueError(f"{where}: a template needs exactly one '{{}}' for the class name, got {template!r}")
    return template


def get_template(dataset_name, override=""):
    """The single template for ``dataset_name``; ``override`` (e.g. TRAINER.ZSCLIP.TEMPLATE) wins."""
    if override:
        return _check(override, "template override")
    return DATASET_TEMPLATES.get(dataset_name, DEFAULT_TEMPLATE)


def get_ensemble_templates(dataset_name, override=""):
    """Templates for a prompt ensemble: the ensemble list plus the dataset's own template
    (ImageNet variants use the ensemble list only, as CLIP did)."""
    templates = list(ENSEMBLE_TEMPLATES)
    own = get_template(dataset_name, override)
    if not dataset_name.startswith("ImageNet") and own not in templates:
        templates.append(own)
    return templates
