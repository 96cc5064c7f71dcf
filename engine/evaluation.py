"""Evaluators (Dassl's API): accumulate model outputs batch by batch, then report.

``build_evaluator(cfg, **kwargs)`` instantiates ``cfg.TEST.EVALUATOR`` from ``EVALUATOR_REGISTRY``.
``evaluate()`` returns an OrderedDict of PERCENT values (the first entry is the model-selection
metric) and prints Dassl's ``=> result`` block, one ``* <key>: X%`` line per metric. Metrics come
from ``calibration`` and follow its conventions (docs/design.md 5.3).
"""
import logging
from collections import OrderedDict

import torch

from ..calibration.accumulators import ClassificationAccumulator, MultiLabelAccumulator, per_class_block, result_block
from ..calibration.registry import Registry
from .utils import get_logger

EVALUATOR_REGISTRY = Registry("EVALUATOR")
logger = logging.getLogger(__name__)


def build_evaluator(cfg, **kwargs):
    """Instantiate the evaluator named by ``cfg.TEST.EVALUATOR`` (a miss lists the closest names)."""
    return EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)(cfg, **kwargs)


def _emit(text):
    """Print through the run's logger (stdout and log.txt) once ``engine.utils.setup_logger`` has
    configured it; plain print otherwise."""
    run_logger = get_logger()
    (run_logger.info if run_logger.handlers else print)(text)


def _warn(text):
    """A warning to the run's logger when configured, else to this module's logger."""
    run_logger = get_logger()
    (run_logger if run_logger.handlers else logger).warning("Warning: " + text)


class EvaluatorBase:
    """Base evaluator: ``reset()``, ``process(mo, gt, features=None)``, ``evaluate()``. A subclass names
    its ``calibration.accumulators`` class (``accumulator``), the attributes it exposes after
    ``evaluate()`` (``outputs``, reset to None) and implements ``evaluate()``."""

    accumulator = None
    outputs = ("confidences", "correct", "proximity")
    emit = staticmethod(_emit)  # where the result block goes

    def __init__(self, cfg, lab2cname=None, **kwargs):
        self.cfg = cfg
        self._lab2cname = lab2cname
        self._proximity_reference = None
        self.acc = self.accumulator() if self.accumulator else None
        self.reset()

    def reset(self):
        if self.acc is not None:
            self.acc.reset()
        for name in self.outputs:
            setattr(self, name, None)

    def process(self, mo, gt, features=None):
        self.acc.update(mo, gt, features, where=f"{type(self).__name__}.process")

    def evaluate(self):
        raise NotImplementedError

    def _percent(self, compute):
        """``compute(proximity)`` (fractions) as an OrderedDict of percentages, after the checks."""
        self.acc._check_nonempty(f"{type(self).__name__}.evaluate")
        self.proximity = self._proximity()
        return OrderedDict((k, 100.0 * v) for k, v in compute(self.proximity).items())

    def set_proximity_reference(self, features):
        """The training-set features (M, D) used as the kNN pool with ``TEST.PROXIMITY_POOL train``
        (``None`` clears them)."""
        f = None if features is None else torch.as_tensor(features).detach()
        if f is not None and f.ndim != 2:
            raise ValueError(f"{type(self).__name__}.set_proximity_reference: expected (M, D) features, "
                             f"got shape {tuple(f.shape)}")
        self._proximity_reference = f

    def _proximity(self):
        """kNN proximity of each evaluated image (normalised features), pool per config."""
        test_cfg = self.cfg.TEST
        pool = str(getattr(test_cfg, "PROXIMITY_POOL", "test")).lower()
        if pool not in ("test", "train"):
            raise ValueError(f"TEST.PROXIMITY_POOL must be one of ['test', 'train'], got {pool!r}")
        train_pool = pool == "train" and bool(self.acc._feats)
        reference = self._proximity_reference if train_pool else None
        if train_pool and reference is None:
            _warn("TEST.PROXIMITY_POOL is 'train' but no training features were set "
                  "(set_proximity_reference); PIECE uses the evaluated set as the pool")
        return self.acc.proximity(int(getattr(test_cfg, "PROXIMITY_K", 10)), reference, warn=_warn)


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Single-label classification: accuracy, macro-F1 and calibration (percent).

    ``process(mo, gt, features=None)``: ``mo`` logits (B, C), ``gt`` int labels (B,), optional image
    ``features`` (B, D) for PIECE. Probabilities are ``softmax(mo)`` in float64. ``evaluate()`` keys, in
    order: ``accuracy``, ``error_rate``, ``macro_f1``, ``ece``, ``mce``, ``adaptive_ece``, ``piece`` (only
    when features were given), ``mce_max``, ``nll`` (nats, reported x100 like the rest), ``brier``;
    ``perclass_accuracy`` (mean of per-class accuracies) when ``TEST.PER_CLASS_RESULT``.
    ``TEST.COMPUTE_CMAT`` stores the row-normalised confusion matrix in ``self.cmat``. After
    ``evaluate()``: ``self.confidences``, ``self.correct``, ``self.proximity`` (or None),
    ``self.per_class_accuracy``.
    """

    accumulator = ClassificationAccumulator
    outputs = EvaluatorBase.outputs + ("per_class_accuracy",)
    cmat = None

    def evaluate(self):
        results = self._percent(lambda prox: self.acc.compute(prox, where=f"{type(self).__name__}.evaluate"))
        self.confidences, self.correct = self.acc.confidences, self.acc.correct
        self.emit(result_block(self.acc.total, results, (f"* correct: {int(self.correct.sum()):,}",)))
        if self.cfg.TEST.PER_CLASS_RESULT:
            text, self.per_class_accuracy, results["perclass_accuracy"] = per_class_block(
                self.acc.per_class_counts(), self._lab2cname)
            self.emit(text)
        if self.cfg.TEST.COMPUTE_CMAT:
            self.cmat = self.acc.confusion_matrix()
        return results


@EVALUATOR_REGISTRY.register()
class MultiLabelClassification(EvaluatorBase):
    """Multi-label classification: mAP, CF1/OF1 and pairwise calibration (percent).

    ``process(logits, targets, features=None)``: ``logits`` (B, C) already scaled by the trainer
    (the logits its BCE loss trained: README, *Labels, losses and the probability*), probabilities
    ``sigmoid(logits)`` in float64; ``targets`` (B, C) multi-hot with 1 positive, 0 negative,
    -1 unknown (dropped everywhere). mAP depends only on the order of the logits.
    ``groups``: dict name -> class indices (e.g. base/new, head/medium/tail). ``evaluate()`` keys, in
    order: ``mAP``, ``cf1``, ``of1``, ``ece``, ``mce``, ``adaptive_ece``, ``ece_positive``,
    ``classwise_ece``, ``piece`` (pairs carry their image's proximity; only when features were given),
    ``accuracy`` (fraction of correct pairs at 0.5), then per group ``mAP_<g>``, ``ece_<g>``,
    ``accuracy_<g>``. After ``evaluate()``: ``self.confidences`` and ``self.correct`` of the valid
    pairs, ``self.probs``, ``self.targets``, ``self.ap_per_class`` (percent, NaN without positives).
    """

    accumulator = MultiLabelAccumulator
    outputs = EvaluatorBase.outputs + ("probs", "targets", "ap_per_class")

    def __init__(self, cfg, lab2cname=None, groups=None, **kwargs):
        self.groups = OrderedDict(groups) if groups else OrderedDict()
        super().__init__(cfg, lab2cname, **kwargs)

    def evaluate(self):
        results = self._percent(lambda prox: self.acc.compute(self.groups, prox, where=type(self).__name__))
        a = self.acc
        self.probs, self.targets, self.confidences, self.correct = a.probs, a.targets, a.confidences, a.correct
        self.ap_per_class = 100.0 * a.ap_per_class
        self.emit(result_block(a.total, results, (f"* classes: {a.probs.shape[1]:,}",
                                                  f"* pairs: {int(a.confidences.shape[0]):,}")))
        return results
