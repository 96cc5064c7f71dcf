"""Evaluators (Dassl's API): accumulate model outputs batch by batch, then report.

``build_evaluator(cfg, **kwargs)`` instantiates ``cfg.TEST.EVALUATOR`` from
``EVALUATOR_REGISTRY``. ``evaluate()`` returns an OrderedDict of PERCENT values
(the first entry is the model-selection metric) and prints Dassl's
``=> result`` block, one ``* <key>: X%`` line per metric.

Metrics come from ``calibration`` and follow its conventions (DESIGN.md 5.3).
"""
import logging
from collections import OrderedDict

import numpy as np
import torch

from cpt.calibration.metrics import classification_metrics, classification_stats, knn_proximity
from cpt.calibration.multilabel import multilabel_metrics
from cpt.engine.registry import Registry
from cpt.engine.utils import get_logger

EVALUATOR_REGISTRY = Registry("EVALUATOR")
logger = logging.getLogger(__name__)

_POOLS = ("test", "train")


def build_evaluator(cfg, **kwargs):
    """Instantiate the evaluator named by ``cfg.TEST.EVALUATOR`` (a miss lists the closest names)."""
    return EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)(cfg, **kwargs)


def _emit(text):
    """Print the result block through the run's logger (stdout and log.txt) once
    ``engine.utils.setup_logger`` has configured it; plain print otherwise."""
    run_logger = get_logger()
    if run_logger.handlers:
        run_logger.info(text)
    else:
        print(text)


def _warn(text):
    """A warning to the run's logger when configured, else to this module's logger."""
    run_logger = get_logger()
    (run_logger if run_logger.handlers else logger).warning("Warning: " + text)


class EvaluatorBase:
    """Base evaluator: ``reset()``, ``process(mo, gt, features=None)``, ``evaluate()``."""

    def __init__(self, cfg, **kwargs):
        self.cfg = cfg
        self._proximity_reference = None

    def reset(self):
        raise NotImplementedError

    def process(self, mo, gt, features=None):
        raise NotImplementedError

    def evaluate(self):
        raise NotImplementedError

    # ---- proximity (PIECE) -------------------------------------------------
    def _features_tensor(self):
        """Accumulated features (N, D) on their device, or None."""
        if not self._feats:
            return None
        if self._n_feat_rows != self._total:
            _warn(f"PIECE skipped: features were given for {self._n_feat_rows} of {self._total} samples")
            return None
        feats = torch.cat([f.to(self._feats[0].device) for f in self._feats], dim=0)
        return feats.float() if feats.dtype in (torch.float16, torch.bfloat16) else feats

    def set_proximity_reference(self, features):
        """Set the training-set image features used as the kNN pool when
        ``cfg.TEST.PROXIMITY_POOL == "train"``. ``None`` clears it."""
        if features is None:
            self._proximity_reference = None
            return
        f = torch.as_tensor(features).detach()
        if f.ndim != 2:
            raise ValueError(f"{type(self).__name__}.set_proximity_reference: expected (M, D) features, "
                             f"got shape {tuple(f.shape)}")
        self._proximity_reference = f

    def _proximity(self, feats):
        """kNN proximity of each evaluated image (normalised features), pool per config."""
        test_cfg = self.cfg.TEST
        k = int(getattr(test_cfg, "PROXIMITY_K", 10))
        pool = str(getattr(test_cfg, "PROXIMITY_POOL", "test")).lower()
        if pool not in _POOLS:
            raise ValueError(f"TEST.PROXIMITY_POOL must be one of {list(_POOLS)}, got {pool!r}")
        reference = None
        if pool == "train":
            if self._proximity_reference is None:
                _warn("TEST.PROXIMITY_POOL is 'train' but no training features were set "
                      "(set_proximity_reference); PIECE uses the evaluated set as the pool")
            else:
                reference = self._proximity_reference.to(device=feats.device, dtype=feats.dtype)
        available = feats.shape[0] - 1 if reference is None else reference.shape[0]
        if available < 1:
            return None
        k_used = min(k, available)
        if k_used != k:
            _warn(f"PIECE: TEST.PROXIMITY_K={k} exceeds the pool ({available}); using k={k_used}")
        prox = knn_proximity(feats, k=k_used, reference=reference, normalize=True)
        return prox.double().cpu().numpy()


def _as_tensor(x, name, where):
    if torch.is_tensor(x):
        return x.detach()
    try:
        return torch.as_tensor(np.asarray(x))
    except Exception as e:  # pragma: no cover - defensive
        raise TypeError(f"{where}: {name} must be a tensor or array, got {type(x).__name__}") from e


def _print_block(total, lines, head_extra=()):
    out = ["=> result", f"* total: {total:,}"]
    out.extend(head_extra)
    out.extend(lines)
    _emit("\n".join(out))


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Single-label classification: accuracy, macro-F1 and calibration (percent).

    ``process(mo, gt, features=None)``: ``mo`` logits (B, C), ``gt`` int labels
    (B,), optional image ``features`` (B, D) for PIECE. Probabilities are
    ``softmax(mo)`` in float64. ``evaluate()`` keys, in order: ``accuracy``,
    ``error_rate``, ``macro_f1``, ``ece``, ``mce``, ``adaptive_ece``, ``piece``
    (only when features were given), ``mce_max``, ``nll`` (nats, reported x100 like
    the rest), ``brier``; ``perclass_accuracy`` (mean of per-class accuracies)
    when ``TEST.PER_CLASS_RESULT``. ``TEST.COMPUTE_CMAT`` stores the row-normalised
    confusion matrix in ``self.cmat``. After ``evaluate()``: ``self.confidences``,
    ``self.correct``, ``self.proximity`` (or None), ``self.per_class_accuracy``.
    """

    def __init__(self, cfg, lab2cname=None, **kwargs):
        super().__init__(cfg, **kwargs)
        self._lab2cname = lab2cname
        self.cmat = None
        self.reset()

    def reset(self):
        self._conf, self._pred, self._label, self._nll, self._brier = [], [], [], [], []
        self._feats = []
        self._n_feat_rows = 0
        self._total = 0
        self.confidences = None
        self.correct = None
        self.proximity = None
        self.per_class_accuracy = None

    def process(self, mo, gt, features=None):
        where = f"{type(self).__name__}.process"
        mo = _as_tensor(mo, "mo", where)
        gt = _as_tensor(gt, "gt", where).reshape(-1)
        if mo.ndim != 2 or mo.shape[0] != gt.shape[0]:
            raise ValueError(f"{where}: expected logits (B, C) and labels (B,), "
                             f"got {tuple(mo.shape)} and {tuple(gt.shape)}")
        stats = classification_stats(mo, gt)
        self._conf.append(stats["confidence"])
        self._pred.append(stats["pred"])
        self._nll.append(stats["nll"])
        self._brier.append(stats["brier"])
        self._label.append(gt.cpu().numpy().astype(np.int64))
        self._total += gt.shape[0]
        if features is not None:
            f = _as_tensor(features, "features", where)
            if f.ndim != 2 or f.shape[0] != gt.shape[0]:
                raise ValueError(f"{where}: features must be (B, D) with B={gt.shape[0]}, got {tuple(f.shape)}")
            self._feats.append(f)
            self._n_feat_rows += f.shape[0]

    def evaluate(self):
        if self._total == 0:
            raise RuntimeError(f"{type(self).__name__}.evaluate: no samples were processed")
        conf = np.concatenate(self._conf)
        pred = np.concatenate(self._pred)
        label = np.concatenate(self._label)
        feats = self._features_tensor()
        self.proximity = self._proximity(feats) if feats is not None else None
        frac = classification_metrics(
            conf, pred, label,
            nll_values=np.concatenate(self._nll),
            brier_values=np.concatenate(self._brier),
            proximity=self.proximity,
            n_bins=10,
        )
        results = OrderedDict((k, 100.0 * v) for k, v in frac.items())
        correct = pred == label
        self.confidences = conf
        self.correct = correct

        lines = []
        for key, v in results.items():
            name = "error" if key == "error_rate" else key  # Dassl prints "error"
            lines.append(f"* {name}: {v:.2f}%")
        _print_block(self._total, lines, head_extra=(f"* correct: {int(correct.sum()):,}",))

        if self.cfg.TEST.PER_CLASS_RESULT:
            classes = np.unique(label)
            n_cls = int(label.max()) + 1
            tot = np.bincount(label, minlength=n_cls)
            cor = np.bincount(label[correct], minlength=n_cls)
            per_class = OrderedDict()
            msg = ["=> per-class result"]
            for c in classes:
                acc = 100.0 * cor[c] / tot[c]
                per_class[int(c)] = acc
                cname = self._lab2cname.get(int(c), str(c)) if self._lab2cname else str(c)
                msg.append(f"* class: {int(c)} ({cname})\ttotal: {int(tot[c]):,}\t"
                           f"correct: {int(cor[c]):,}\tacc: {acc:.2f}%")
            mean_acc = float(np.mean(list(per_class.values())))
            msg.append(f"* average: {mean_acc:.2f}%")
            _emit("\n".join(msg))
            self.per_class_accuracy = per_class
            results["perclass_accuracy"] = mean_acc

        if self.cfg.TEST.COMPUTE_CMAT:
            self.cmat = _confusion_matrix(label, pred)
        return results


def _confusion_matrix(label, pred):
    """Row-normalised confusion matrix (rows: true class; classes 0..max seen);
    rows of classes absent from ``label`` are 0."""
    n = int(max(label.max(), pred.max())) + 1
    cm = np.bincount(label * n + pred, minlength=n * n).reshape(n, n).astype(np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)


@EVALUATOR_REGISTRY.register()
class MultiLabelClassification(EvaluatorBase):
    """Multi-label classification: mAP, CF1/OF1 and pairwise calibration (percent).

    ``process(logits, targets, features=None)``: ``logits`` (B, C) already scaled
    by the trainer, probabilities ``sigmoid(logits)`` in float64; ``targets`` (B, C)
    multi-hot with 1 positive, 0 negative, -1 unknown (dropped everywhere). The CLIP
    trainers pass their *calibration logits* (``trainers/base.py``:
    ``BCE_SCALE * cos + BCE_BIAS``; TaI-DPT: ``a * merged cosine + b``), so this sigmoid
    is the probability their BCE loss trained and CCR regularised; mAP depends only on
    the order of the logits.
    ``groups``: dict name -> class indices (e.g. base/new, head/medium/tail).
    ``evaluate()`` keys, in order: ``mAP``, ``cf1``, ``of1``, ``ece``, ``mce``,
    ``adaptive_ece``, ``ece_positive``, ``classwise_ece``, ``piece`` (pairs carry
    their image's proximity; only when features were given), ``accuracy``
    (fraction of correct pairs at 0.5), then per group ``mAP_<g>``, ``ece_<g>``,
    ``accuracy_<g>``. After ``evaluate()``: ``self.confidences`` and
    ``self.correct`` of the valid pairs, ``self.probs``, ``self.targets``,
    ``self.ap_per_class`` (percent, NaN for classes without positives).
    """

    def __init__(self, cfg, lab2cname=None, groups=None, **kwargs):
        super().__init__(cfg, **kwargs)
        self._lab2cname = lab2cname
        self.groups = OrderedDict(groups) if groups else OrderedDict()
        self.reset()

    def reset(self):
        self._probs, self._targets, self._feats = [], [], []
        self._n_feat_rows = 0
        self._total = 0
        self.confidences = None
        self.correct = None
        self.probs = None
        self.targets = None
        self.proximity = None
        self.ap_per_class = None

    def process(self, mo, gt, features=None):
        where = f"{type(self).__name__}.process"
        mo = _as_tensor(mo, "logits", where)
        gt = _as_tensor(gt, "targets", where)
        if mo.ndim != 2 or tuple(gt.shape) != tuple(mo.shape):
            raise ValueError(f"{where}: expected logits and multi-hot targets of the same shape (B, C), "
                             f"got {tuple(mo.shape)} and {tuple(gt.shape)}")
        self._probs.append(torch.sigmoid(mo.double()).cpu().numpy())
        t = gt.cpu().numpy()
        if t.size and (t.min() < -1 or t.max() > 1):
            raise ValueError(f"{where}: targets must be 1, 0 or -1 (unknown), got values in "
                             f"[{t.min()}, {t.max()}]")
        self._targets.append(t.astype(np.int8))
        self._total += mo.shape[0]
        if features is not None:
            f = _as_tensor(features, "features", where)
            if f.ndim != 2 or f.shape[0] != mo.shape[0]:
                raise ValueError(f"{where}: features must be (B, D) with B={mo.shape[0]}, got {tuple(f.shape)}")
            self._feats.append(f)
            self._n_feat_rows += f.shape[0]

    def evaluate(self):
        if self._total == 0:
            raise RuntimeError(f"{type(self).__name__}.evaluate: no samples were processed")
        probs = np.concatenate(self._probs)
        targets = np.concatenate(self._targets)
        n_classes = probs.shape[1]
        for name, idx in self.groups.items():
            idx = np.asarray(list(idx), dtype=np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= n_classes):
                raise ValueError(f"{type(self).__name__}: group {name!r} has class indices outside [0, {n_classes})")
        feats = self._features_tensor()
        self.proximity = self._proximity(feats) if feats is not None else None
        frac, conf, correct, ap = multilabel_metrics(probs, targets, n_bins=10, groups=self.groups,
                                                     proximity=self.proximity)
        results = OrderedDict((k, 100.0 * v) for k, v in frac.items())
        self.probs, self.targets = probs, targets
        self.confidences, self.correct = conf, correct
        self.ap_per_class = 100.0 * ap
        n_pairs = int(conf.shape[0])
        lines = [f"* {k}: {v:.2f}%" for k, v in results.items()]
        _print_block(self._total, lines, head_extra=(f"* classes: {n_classes:,}", f"* pairs: {n_pairs:,}"))
        return results
