"""Dataset modules, one per benchmark; importing this package registers them all.

Every module in this package except the helpers listed in ``_NOT_DATASETS`` is
imported so its ``@DATASET_REGISTRY.register()`` classes are available.
The package is ``cpt.datasets`` (see ``cpt/__init__.py``): nothing named ``datasets`` is
installed at the top level, so Hugging Face's package keeps its name.
"""
import importlib
import pkgutil

_NOT_DATASETS = {"check", "world", "common", "splits", "multilabel", "__main__"}


def _import_all():
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in _NOT_DATASETS and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


_import_all()
