"""Drop-in replacement for upstream Dassl.pytorch's ``dassl/evaluation/evaluator.py``.

Defines what the upstream module defines (``EvaluatorBase``, ``Classification`` registered in
``EVALUATOR_REGISTRY``) and reports, in percent, upstream's accuracy, error rate and macro-F1 plus
this project's calibration metrics (docs/design.md 5.3; keys in dassl_patches/README.md). Needs the
``cpt`` package importable (``pip install -e .``); installed by ``python dassl_patches/install.py``.
"""
import os.path as osp

import torch

from cpt.calibration.fileio import atomic_write_with
from cpt.engine import evaluation
from cpt.engine.evaluation import EvaluatorBase  # noqa: F401  Dassl's interface, plus the PIECE pool (TEST.PROXIMITY_*)

from .build import EVALUATOR_REGISTRY


@EVALUATOR_REGISTRY.register()
class Classification(evaluation.Classification):
    """The engine's evaluator (``cpt.engine.evaluation.Classification``), printing to stdout.

    ``process(mo, gt, features=None)``: logits (B, C), int labels (B,) and, for PIECE, optional image
    features (B, D) (upstream trainers pass none). ``TEST.COMPUTE_CMAT`` also saves
    ``<OUTPUT_DIR>/cmat.pt``, as upstream does."""

    emit = staticmethod(print)

    def __init__(self, cfg, lab2cname=None, **kwargs):
        if cfg.TEST.PER_CLASS_RESULT:
            assert lab2cname is not None, "TEST.PER_CLASS_RESULT needs lab2cname"
        super().__init__(cfg, lab2cname)

    def evaluate(self):
        results = super().evaluate()
        if self.cfg.TEST.COMPUTE_CMAT:
            save_path = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
            atomic_write_with(lambda f: torch.save(self.cmat, f), save_path)
            print(f"Confusion matrix is saved to {save_path}")
        return results
