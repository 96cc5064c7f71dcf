"""CLIP prompt learners. Importing the package registers the trainers in ``TRAINER_REGISTRY``
(``ZeroshotCLIP``, ``ZeroshotCLIP2``, ``CoOp``, ``CoCoOp``, ``KgCoOp``, ``MaPLe``, ``TaIDPT``); open_clip is
imported only when a backbone is loaded."""
from cpt.trainers import cocoop, coop, kgcoop, maple, taidpt, zsclip  # noqa: F401  (registration)
