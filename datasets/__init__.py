"""Dataset modules, one per benchmark; importing this package registers them all.

Every module in this package except the helpers listed in ``_NOT_DATASETS`` is
imported so its ``@DATASET_REGISTRY.register()`` classes are available.
Install the project into a dedicated environment: this top-level name would
shadow Hugging Face's ``datasets`` package.
"""
import importlib
import pkgutil

_NOT_DATASETS = {"check", "world", "common", "__main__"}


def _import_all():
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in _NOT_DATASETS and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


_import_all()
