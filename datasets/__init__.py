"""Dataset modules, one per benchmark; importing this package (``cpt.datasets``) registers them all:
every module except the helpers in ``_NOT_DATASETS`` is imported, so its registered classes exist.
A dataset's own config keys (``DATASET.<KEY>``) are the ``config_keys`` of its class or its bases
(name -> default); :func:`extend_cfg` adds those of every registered dataset to a config.
"""
if not __name__.startswith("cpt."):  # one name per module: this folder is the package cpt.<folder>
    raise ImportError(f"import cpt.{__name__} (python -m cpt.{__name__}.<module>), not {__name__}", name=__name__)
import importlib
import pkgutil

_NOT_DATASETS = {"check", "world", "common", "splits", "multilabel", "__main__"}


def _import_all():
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in _NOT_DATASETS and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


_import_all()


def extend_cfg(cfg):
    """Add the ``DATASET.<KEY>`` keys the registered datasets declare (existing keys are left as they are)."""
    from ..engine.data import DATASET_REGISTRY

    for _, cls in DATASET_REGISTRY.items():
        for c in reversed(cls.__mro__):
            for key, default in vars(c).get("config_keys", {}).items():
                if key not in cfg.DATASET:
                    cfg.DATASET[key] = default
    return cfg
