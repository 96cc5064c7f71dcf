"""CLIP prompt learners, one module (or package) per method: importing this package imports every
module here, registering the trainers in ``TRAINER_REGISTRY`` (open_clip is imported only when a
backbone is loaded)."""
if not __name__.startswith("cpt."):  # one name per module: this folder is the package cpt.<folder>
    raise ImportError(f"import cpt.{__name__} (python -m cpt.{__name__}.<module>), not {__name__}", name=__name__)
import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
