"""Install as one package, ``cpt``: ``pip install -e .`` (or ``pip install .``); the source folders
and ``configs/`` become ``cpt.engine``, ... ``cpt.configs`` (see ``cpt/__init__.py``)."""
from setuptools import setup

SOURCE_PACKAGES = ["engine", "engine.data", "calibration", "trainers", "trainers.clip", "datasets", "datasets.world",
                   "dassl_patches", "cli"]

with open("requirements.txt") as f:
    requirements = [line.strip() for line in f if line.strip() and not line.startswith("#")]

setup(
    name="calibrated-prompt-tuning",
    version="0.1.0",
    description="Calibrated prompt tuning of CLIP: Dassl-compatible engine, prompt learners, calibration",
    packages=["cpt", "cpt.configs"] + [f"cpt.{p}" for p in SOURCE_PACKAGES],
    package_dir={"cpt": "cpt", "cpt.configs": "configs",
                 **{f"cpt.{p}": p.replace(".", "/") for p in SOURCE_PACKAGES}},
    package_data={"cpt.trainers": ["weights/*"], "cpt.calibration": ["data/*"], "cpt.datasets": ["data/*"],
                  "cpt.configs": ["*/*.yaml", "*/*/*.yaml"], "cpt.dassl_patches": ["README.md"]},
    entry_points={"console_scripts": ["cpt-train = cpt.cli:cli"]},
    python_requires=">=3.9",
    install_requires=requirements,
)
