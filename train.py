"""Train or evaluate a prompt learner from a source checkout: ``python train.py [flags]``.

The same command line as the installed ``cpt-train`` (its code and docs: ``cli/run.py``). Runs
this checkout's code whatever the working directory, and stops with a clear message when another
module answers to one of the project's names.
"""
import os
import sys

_ROOT = os.path.dirname(os.path.abspath(__file__))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import cpt  # noqa: E402

if getattr(cpt, "PACKAGE_ROOT", None) != _ROOT:
    sys.exit(f"error: ImportError: the module 'cpt' at {getattr(cpt, '__file__', None) or list(cpt.__path__)} "
             f"shadows this checkout's package ({os.path.join(_ROOT, 'cpt')}); rename or uninstall it")

from cpt.cli import build_parser, cli, main, setup_cfg  # noqa: E402,F401

if __name__ == "__main__":
    # The package keeps this folder on its own path; off sys.path, a top-level ``datasets``
    # imported by any library in this process is the installed one (Hugging Face's), not ours.
    while _ROOT in sys.path:
        sys.path.remove(_ROOT)
    cli()
