"""Dataset modules, one per benchmark; importing this package (``cpt.datasets``) registers them all:
every module except the helpers in ``_NOT_DATASETS`` is imported, so its registered classes exist.
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
