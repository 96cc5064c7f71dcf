"""``python -m cpt.cli``: the same command as ``train.py`` and ``cpt-train``."""
from .run import cli

cli()
