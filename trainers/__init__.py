"""CLIP prompt learners. Importing the package registers the trainers in ``TRAINER_REGISTRY``
(``ZeroshotCLIP``, ``ZeroshotCLIP2``, ``CoOp``, ``CoCoOp``, ``KgCoOp``, ``MaPLe``, ``TaIDPT``); open_clip is
imported only when a backbone is loaded."""
if not __name__.startswith("cpt."):  # one name per module: this folder is the package cpt.<folder>
    raise ImportError(f"import cpt.{__name__} (python -m cpt.{__name__}.<module>), not {__name__}", name=__name__)
from . import cocoop, coop, kgcoop, maple, taidpt, zsclip
