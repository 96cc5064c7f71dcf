"""The command line (the top layer): ``train.py`` / ``cpt-train`` (:mod:`.run`, arguments in
:mod:`.args`, run-folder checks in :mod:`.run_folder`), the method catalog and run layout of the
drivers (:mod:`.catalog`), and plugin loading (:mod:`.plugins`)."""
if not __name__.startswith("cpt."):  # one name per module: this folder is the package cpt.<folder>
    raise ImportError(f"import cpt.{__name__} (python -m cpt.{__name__}.<module>), not {__name__}", name=__name__)
from .args import build_parser, setup_cfg
from .run import cli, main
from .run_folder import identity_of_argv
