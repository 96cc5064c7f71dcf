"""Drop-in replacement for upstream Dassl.pytorch's ``dassl/evaluation/evaluator.py``.

Defines what the upstream module defines (``EvaluatorBase`` and ``Classification``
registered in ``EVALUATOR_REGISTRY``) and reports, in percent, accuracy,
error rate and macro-F1 as upstream does plus the calibration metrics of this
project's ``calibration`` package (docs/design.md 5.3 conventions):

    accuracy, error_rate, macro_f1, ece, mce, adaptive_ece, [piece], mce_max, nll, brier

``piece`` appears when the trainer passes image features:
``evaluator.process(output, label, features)``. Upstream trainers call
``process(output, label)`` and are unaffected. The ``cpt.calibration`` package must
be importable (``pip install -e .`` of this project). Install with
``python dassl_patches/install.py`` (see dassl_patches/README.md).
"""
import os.path as osp
import torch

from cpt.calibration.accumulators import ClassificationAccumulator, per_class_block, result_block
from cpt.engine.evaluation import EvaluatorBase  # Dassl's interface, plus the PIECE pool (TEST.PROXIMITY_*)
from cpt.fileio import atomic_write_with

from .build import EVALUATOR_REGISTRY


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Evaluator for classification, with calibration metrics (percent).

    ``process(mo, gt, features=None)``: logits (B, C), int labels (B,), optional
    image features (B, D) for PIECE (kNN proximity with k = TEST.PROXIMITY_K,
    default 10, over the evaluated set, or over the features given to
    ``set_proximity_reference`` when TEST.PROXIMITY_POOL == "train").
    After ``evaluate()``: ``self.confidences``, ``self.correct`` (numpy).
    """

    accumulator = ClassificationAccumulator
    cmat = None

    def __init__(self, cfg, lab2cname=None, **kwargs):
        if cfg.TEST.PER_CLASS_RESULT:
            assert lab2cname is not None, "TEST.PER_CLASS_RESULT needs lab2cname"
        super().__init__(cfg, lab2cname)

    def evaluate(self):
        results = self._percent(self.acc.compute)
        self.confidences, self.correct = self.acc.confidences, self.acc.correct
        print(result_block(self.acc.total, results, (f"* correct: {int(self.correct.sum()):,}",)))
        if self.cfg.TEST.PER_CLASS_RESULT:
            text, _, results["perclass_accuracy"] = per_class_block(self.acc.per_class_counts(), self._lab2cname)
            print(text)
        if self.cfg.TEST.COMPUTE_CMAT:
            self.cmat = self.acc.confusion_matrix()
            save_path = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
            atomic_write_with(lambda f: torch.save(self.cmat, f), save_path)
            print(f"Confusion matrix is saved to {save_path}")
        return results
