"""Calibrated prompt tuning of CLIP, as one importable package: ``cpt`` (layers: docs/design.md).

In a source checkout the sub-packages (``engine``, ``calibration``, ``trainers``, ``datasets``,
``dassl_patches``) are the top-level folders users of the Dassl/CoOp forks know, and this file
adds the checkout root to the package path; an installed copy (``pip install .``) holds them
inside this folder, with ``configs/`` beside them. Nothing is installed under a top-level name
such as ``datasets``, so Hugging Face's ``datasets`` and ours live side by side.
"""
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
SUBPACKAGES = ("engine", "calibration", "trainers", "datasets", "cli")

if os.path.isfile(os.path.join(_HERE, "engine", "__init__.py")):
    PACKAGE_ROOT = _HERE  # installed copy
else:
    PACKAGE_ROOT = os.path.dirname(_HERE)  # source checkout: sub-packages beside this folder
    __path__.append(PACKAGE_ROOT)


def check_imports():
    """Raise ``ImportError`` naming the module when something else answers to one of our names.

    Catches a folder or file named like a sub-package (``cpt/engine.py`` left by an old copy, a
    stale install) that would otherwise surface later as an unrelated registry error.
    """
    import importlib.util

    for name in SUBPACKAGES:  # found, not imported: the check costs no import time
        spec = importlib.util.find_spec(f"{__name__}.{name}")
        where = [os.path.abspath(p) for p in (spec.submodule_search_locations or [])] or [spec.origin]
        if os.path.join(PACKAGE_ROOT, name) not in where:
            raise ImportError(f"{__name__}.{name} resolves to {where[0]}, not this project's "
                              f"{os.path.join(PACKAGE_ROOT, name)}: another module shadows it")
