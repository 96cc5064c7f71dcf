"""Stateful metric accumulators (``update`` per batch, ``compute`` once, ``reset``; as in
torchmetrics) between the functions of ``metrics``/``multilabel`` and the evaluators
(``engine.evaluation``, ``dassl_patches``): per-sample statistics and optional image features
(PIECE); ``compute`` returns FRACTIONS. Evaluators add config, percent and printing;
:func:`result_block` / :func:`per_class_block` are Dassl's printed format, shared by both.
"""
from collections import OrderedDict

import numpy as np
import torch

from .metrics import classification_metrics, classification_stats
from .multilabel import multilabel_metrics
from .proximity import knn_proximity


def _as_tensor(x, name, where):
    if torch.is_tensor(x):
        return x.detach()
    try:
        return torch.as_tensor(np.asarray(x))
    except Exception as e:  # pragma: no cover - defensive
        raise TypeError(f"{where}: {name} must be a tensor or array, got {type(x).__name__}") from e


class _Accumulator:
    """Sample count and the optional image features (for PIECE's kNN proximity)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.total = 0
        self._feats = []
        self._n_feat_rows = 0

    def _add_features(self, features, n, where):
        if features is None:
            return
        f = _as_tensor(features, "features", where)
        if f.ndim != 2 or f.shape[0] != n:
            raise ValueError(f"{where}: features must be (B, D) with B={n}, got {tuple(f.shape)}")
        self._feats.append(f)
        self._n_feat_rows += f.shape[0]

    def _check_nonempty(self, where):
        if self.total == 0:
            raise RuntimeError(f"{where}: no samples were processed")

    def proximity(self, k=10, reference=None, warn=print):
        """kNN proximity (``proximity.knn_proximity`` on L2-normalised features) of every sample,
        float64 numpy; the pool is the accumulated set (self excluded) or ``reference``.
        None when no features were given, when only some samples had them, or when the pool is
        empty; ``k`` is clamped to the pool with a ``warn`` message."""
        if not self._feats:
            return None
        if self._n_feat_rows != self.total:
            warn(f"PIECE skipped: features were given for {self._n_feat_rows} of {self.total} samples")
            return None
        feats = torch.cat([f.to(self._feats[0].device) for f in self._feats], dim=0)
        if feats.dtype not in (torch.float32, torch.float64):
            feats = feats.float()
        if reference is not None:
            reference = torch.as_tensor(reference).to(device=feats.device, dtype=feats.dtype)
        available = feats.shape[0] - 1 if reference is None else reference.shape[0]
        if available < 1:
            return None
        k_used = min(int(k), available)
        if k_used != k:
            warn(f"PIECE: TEST.PROXIMITY_K={k} exceeds the pool ({available}); using k={k_used}")
        return knn_proximity(feats, k=k_used, reference=reference, normalize=True).double().cpu().numpy()


class ClassificationAccumulator(_Accumulator):
    """Single-label: ``update(logits (B, C), labels (B,), features=None)``; probabilities are
    ``softmax(logits)`` in float64. After :meth:`compute`: ``confidences``, ``pred``,
    ``labels`` and ``correct`` (numpy, every sample)."""

    def reset(self):
        super().reset()
        self._stats = {"confidence": [], "pred": [], "nll": [], "brier": []}
        self._labels = []
        self.confidences = self.pred = self.labels = self.correct = None

    def update(self, logits, labels, features=None, where="ClassificationAccumulator.update"):
        mo = _as_tensor(logits, "mo", where)
        gt = _as_tensor(labels, "gt", where).reshape(-1)
        if mo.ndim != 2 or mo.shape[0] != gt.shape[0]:
            raise ValueError(f"{where}: expected logits (B, C) and labels (B,), "
                             f"got {tuple(mo.shape)} and {tuple(gt.shape)}")
        for key, v in classification_stats(mo, gt).items():
            self._stats[key].append(v)
        self._labels.append(gt.cpu().numpy().astype(np.int64))
        self.total += gt.shape[0]
        self._add_features(features, gt.shape[0], where)

    def compute(self, proximity=None, n_bins=10, where="ClassificationAccumulator.compute"):
        """Every single-label metric (``metrics.classification_metrics``), fractions, in order."""
        self._check_nonempty(where)
        s = {k: np.concatenate(v) for k, v in self._stats.items()}
        self.confidences, self.pred = s["confidence"], s["pred"]
        self.labels = np.concatenate(self._labels)
        self.correct = self.pred == self.labels
        return classification_metrics(self.confidences, self.pred, self.labels, nll_values=s["nll"],
                                      brier_values=s["brier"], proximity=proximity, n_bins=n_bins)

    def per_class_counts(self):
        """OrderedDict class -> (total, correct) over the classes present (after compute)."""
        n_cls = int(self.labels.max()) + 1
        tot = np.bincount(self.labels, minlength=n_cls)
        cor = np.bincount(self.labels[self.correct], minlength=n_cls)
        return OrderedDict((int(c), (int(tot[c]), int(cor[c]))) for c in np.unique(self.labels))

    def confusion_matrix(self):
        """Row-normalised confusion matrix (rows: true class; classes 0..max seen); rows of
        classes absent from the labels are 0."""
        label, pred = self.labels, self.pred
        n = int(max(label.max(), pred.max())) + 1
        cm = np.bincount(label * n + pred, minlength=n * n).reshape(n, n).astype(np.float64)
        rows = cm.sum(axis=1, keepdims=True)
        return np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)


class MultiLabelAccumulator(_Accumulator):
    """Multi-label: ``update(logits (B, C), targets (B, C), features=None)`` with targets 1
    positive, 0 negative, -1 unknown; probabilities ``sigmoid(logits)`` in float64 (the
    probability-map contract of ``calibration.multilabel``). After
    :meth:`compute`: ``probs``, ``targets``, ``confidences``/``correct`` of the valid pairs and
    ``ap_per_class`` (fractions, NaN for classes without positives)."""

    def reset(self):
        super().reset()
        self._probs, self._targets = [], []
        self.probs = self.targets = self.confidences = self.correct = self.ap_per_class = None

    def update(self, logits, targets, features=None, where="MultiLabelAccumulator.update"):
        mo = _as_tensor(logits, "logits", where)
        gt = _as_tensor(targets, "targets", where)
        if mo.ndim != 2 or tuple(gt.shape) != tuple(mo.shape):
            raise ValueError(f"{where}: expected logits and multi-hot targets of the same shape (B, C), "
                             f"got {tuple(mo.shape)} and {tuple(gt.shape)}")
        t = gt.cpu().numpy()
        if t.size and (t.min() < -1 or t.max() > 1):
            raise ValueError(f"{where}: targets must be 1, 0 or -1 (unknown), got values in "
                             f"[{t.min()}, {t.max()}]")
        self._probs.append(torch.sigmoid(mo.double()).cpu().numpy())
        self._targets.append(t.astype(np.int8))
        self.total += mo.shape[0]
        self._add_features(features, mo.shape[0], where)

    def compute(self, groups=None, proximity=None, n_bins=10, where="MultiLabelAccumulator.compute"):
        """Every multi-label metric (``multilabel.multilabel_metrics``), fractions, in order;
        ``groups``: name -> class indices (per-group mAP/ECE/accuracy; checked there)."""
        self._check_nonempty(where)
        probs, targets = np.concatenate(self._probs), np.concatenate(self._targets)
        frac, self.confidences, self.correct, self.ap_per_class = multilabel_metrics(
            probs, targets, n_bins=n_bins, groups=groups or {}, proximity=proximity)
        self.probs, self.targets = probs, targets
        return frac


def result_block(total, results, head_extra=()):
    """Dassl's printed ``=> result`` block: ``* total``, ``head_extra`` lines, then
    ``* <key>: X.XX%`` per entry of ``results`` (percent; ``error_rate`` prints as ``error``)."""
    lines = ["=> result", f"* total: {total:,}", *head_extra]
    lines += [f"* {'error' if k == 'error_rate' else k}: {v:.2f}%" for k, v in results.items()]
    return "\n".join(lines)


def per_class_block(counts, lab2cname=None):
    """Dassl's ``=> per-class result`` block from ``ClassificationAccumulator.per_class_counts``;
    returns (text, OrderedDict class -> accuracy in percent, their mean)."""
    accs = OrderedDict()
    msg = ["=> per-class result"]
    for c, (tot, cor) in counts.items():
        accs[c] = 100.0 * cor / tot
        name = lab2cname.get(c, str(c)) if lab2cname else str(c)
        msg.append(f"* class: {c} ({name})\ttotal: {tot:,}\tcorrect: {cor:,}\tacc: {accs[c]:.2f}%")
    mean_acc = float(np.mean(list(accs.values())))
    msg.append(f"* average: {mean_acc:.2f}%")
    return "\n".join(msg), accs, mean_acc
