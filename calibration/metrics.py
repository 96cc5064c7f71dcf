"""Classification and calibration metrics (vectorised, framework-agnostic).

Every metric takes numpy arrays or torch tensors (any device) and returns a
Python float holding a FRACTION (evaluators multiply by 100). No metric loops
over samples in Python (``calibration.binning``: blocked grid passes and
np.bincount, with bins decided by exact float64 comparisons), so 3.2M samples
take tens of milliseconds. Confidences and proximities must be finite
(NaN/inf raise ValueError).

Conventions (the TCPT evaluator's, see docs/design.md section 5.3):

* ``ece``: ``n_bins`` equal-width bins with edges ``np.linspace(0, 1, n_bins+1)``;
  a confidence c falls in bin ``(lo, hi]``. A sample with c = 0 (or c outside
  (0, 1]) is in no bin but still counts in N.
  ``ECE = sum_b |acc_b - conf_b| * n_b / N``.
* ``mce``: the same edges, bins ``[lo, hi)`` with the last bin closed at 1
  (c = 0 falls in the first bin). ``weighted=True`` (the papers' MCE):
  ``max_b |acc_b - conf_b| * n_b / N``; ``weighted=False`` (textbook MCE):
  ``max_b |acc_b - conf_b|``. Maxima run over non-empty bins.
* ``adaptive_ece``: ``n_bins`` equal-mass bins, edges
  ``np.quantile(c, np.linspace(0, 1, n_bins+1))`` (linear interpolation);
  edges closer than 1e-8 to the previous edge are dropped (zero-width bins
  merged); bins ``[lo, hi)`` with the last one closed. If every confidence is
  equal there is a single bin. Sum as for ECE.
* ``piece``: ``n_prox_bins`` equal-mass proximity bins (the adaptive-ECE rule
  applied to the proximity) x ``n_bins`` equal-width confidence bins
  (``[lo, hi)``, last closed, as for MCE);
  ``sum_cells |acc - conf| * n / N`` over non-empty cells.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Sequence, Union

import numpy as np
import torch

from . import binning as B
from .proximity import knn_proximity  # noqa: F401  (public here as well)

# What every metric accepts: a numpy array, a torch tensor (any device, any float dtype) or a sequence.
ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float]]


# --- input handling ----------------------------------------------------------
def _to_numpy(x: ArrayLike, dtype: Any = None) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        x = x.cpu().numpy()
    else:
        x = np.asarray(x)
    if dtype is not None and x.dtype != dtype:
        x = x.astype(dtype)
    return x


def _prep(confidences: ArrayLike, correct: ArrayLike, fname: str,
          n_bins: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Float64 confidences, correctness (bool or float64) and the checked ``n_bins``."""
    c = _to_numpy(confidences, np.float64)
    a = _to_numpy(correct)
    if c.ndim != 1 or a.ndim != 1:
        raise ValueError(f"calibration.metrics.{fname}: confidences and correct must be 1-D, "
                         f"got shapes {tuple(c.shape)} and {tuple(a.shape)}")
    if c.shape[0] != a.shape[0]:
        raise ValueError(f"calibration.metrics.{fname}: confidences ({c.shape[0]}) and correct "
                         f"({a.shape[0]}) differ in length")
    if c.shape[0] == 0:
        raise ValueError(f"calibration.metrics.{fname}: got no samples")
    if a.dtype != np.bool_ and a.dtype != np.float64:
        a = a.astype(np.float64)
    return np.ascontiguousarray(c), np.ascontiguousarray(a), _check_bins(n_bins, fname)


def _check_bins(n_bins: int, fname: str, name: str = "n_bins") -> int:
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"calibration.metrics.{fname}: {name} must be a positive integer, got {n_bins!r}")
    return int(n_bins)


# --- binning (calibration.binning does the exact, fast per-bin sums) ---------
def _binner(fname: str, what: str, make: Callable[..., Any], *args: Any) -> Any:
    """``make(*args)`` (``B.Grid`` / ``B.EqualMass``); its ValueError names the function and input."""
    try:
        return make(*args)
    except ValueError as e:
        raise ValueError(f"calibration.metrics.{fname}: {what} {e}") from None


def _grid(c: np.ndarray, fname: str) -> B.Grid:
    return _binner(fname, "confidences", B.Grid, c)


def _edges(n_bins: int) -> np.ndarray:
    """Equal-width edges ``linspace(0, 1, n_bins + 1)``."""
    return np.linspace(0.0, 1.0, n_bins + 1)


def equal_width_bin_index(x: ArrayLike, n_bins: int = 10, rule: str = "ece") -> np.ndarray:
    """Exact equal-width bin (integer array) of each value: ``rule="ece"``: ``(lo, hi]`` bins 1..n_bins,
    0 for x <= 0 and n_bins + 1 for x > 1; ``rule="right"`` (MCE's, PIECE's): ``[lo, hi)``, the last
    closed, 0..n_bins-1 (``np.digitize`` on the interior edges)."""
    x = np.ascontiguousarray(_to_numpy(x, np.float64).reshape(-1))
    edges = _edges(_check_bins(n_bins, "equal_width_bin_index"))
    if rule not in ("ece", "right"):
        raise ValueError(f"calibration.metrics.equal_width_bin_index: rule must be 'ece' or 'right', got {rule!r}")
    grid = _grid(x, "equal_width_bin_index")
    return B.bin_index(grid, edges, True) if rule == "ece" else B.bin_index(grid, edges[1:-1], False)


def quantile_bin_index(x: ArrayLike, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``(index int64 array, edges)``: equal-mass bin of each value of 1-D ``x`` (``adaptive_ece``'s
    rule, module docstring; a constant ``x`` gives a single bin)."""
    x = np.ascontiguousarray(_to_numpy(x, np.float64).reshape(-1))
    n_bins = _check_bins(n_bins, "quantile_bin_index")
    em = _binner("quantile_bin_index", "x", B.EqualMass, x, n_bins)
    edges = np.array([em.grid.mn, em.grid.mx]) if em.edges is None else em.edges
    return em.bin_index().astype(np.int64), edges


# --- calibration errors ------------------------------------------------------
def ece(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error (fraction): ``(lo, hi]`` equal-width bins (module docstring)."""
    c, a, n_bins = _prep(confidences, correct, "ece", n_bins)
    gap, _ = B.binned_gaps(_grid(c, "ece"), _edges(n_bins), True, a, c)
    return float(np.abs(gap[1:-1]).sum() / c.shape[0])


def mce(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 10, weighted: bool = True) -> float:
    """Maximum calibration error (fraction); ``weighted`` True: the papers' mass-weighted MCE,
    False: the textbook one (module docstring)."""
    c, a, n_bins = _prep(confidences, correct, "mce", n_bins)
    gap, counts = B.binned_gaps(_grid(c, "mce"), _edges(n_bins)[1:-1], False, a, c, counts=True)
    nz = counts > 0
    gap = np.abs(gap[nz])
    return float(gap.max() / c.shape[0]) if weighted else float((gap / counts[nz]).max())


def adaptive_ece(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> float:
    """Adaptive (equal-mass) ECE (fraction), bins as in the module docstring. (No
    ``KBinsDiscretizer``: its default quantile rule changed in scikit-learn 1.9 and it subsamples
    above 200,000 points.)"""
    c, a, n_bins = _prep(confidences, correct, "adaptive_ece", n_bins)
    em = _binner("adaptive_ece", "confidences", B.EqualMass, c, n_bins, a, c)
    return float(np.abs(em.gap_sums(a, c)).sum() / c.shape[0])


def piece(confidences: ArrayLike, correct: ArrayLike, proximity: ArrayLike, n_bins: int = 10,
          n_prox_bins: int = 10) -> float:
    """Proximity-informed ECE (fraction): equal-mass proximity bins x equal-width confidence
    bins (module docstring)."""
    c, a, n_bins = _prep(confidences, correct, "piece", n_bins)
    p = np.ascontiguousarray(_to_numpy(proximity, np.float64))
    if p.ndim != 1 or p.shape[0] != c.shape[0]:
        raise ValueError(f"calibration.metrics.piece: proximity must be 1-D with {c.shape[0]} entries, "
                         f"got shape {tuple(p.shape)}")
    n_prox_bins = _check_bins(n_prox_bins, "piece", "n_prox_bins")
    cgrid = _grid(c, "piece")
    gap = B.cell_gaps(_binner("piece", "proximity", B.EqualMass, p, n_prox_bins), cgrid, a, n_bins)
    return float(np.abs(gap).sum() / c.shape[0])


def reliability_bins(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> dict[str, Any]:
    """Per-bin data of a reliability diagram (ECE's ``(lo, hi]`` bins), a dict: ``edges``, ``counts``,
    ``mean_confidence`` and ``accuracy`` (NaN for empty bins), ``n_total`` (N), ``n_unbinned``
    (confidences of 0 or outside (0, 1]) and ``ece`` (equal to :func:`ece`)."""
    c, a, n_bins = _prep(confidences, correct, "reliability_bins", n_bins)
    edges = _edges(n_bins)
    bins = B.bin_index(_grid(c, "reliability_bins"), edges, True)
    counts = np.bincount(bins, minlength=n_bins + 2)
    sum_c = np.bincount(bins, weights=c, minlength=n_bins + 2)[1:-1]
    gap = np.bincount(bins, weights=np.subtract(a, c), minlength=n_bins + 2)[1:-1]
    n_unbinned = int(counts[0] + counts[-1])
    counts = counts[1:-1]
    filled = counts > 0
    denom = np.maximum(counts, 1)
    return {
        "edges": edges,
        "counts": counts,
        "mean_confidence": np.where(filled, sum_c / denom, np.nan),
        "accuracy": np.where(filled, (sum_c + gap) / denom, np.nan),
        "n_total": int(c.shape[0]),
        "n_unbinned": n_unbinned,
        "ece": float(np.abs(gap).sum() / c.shape[0]),
    }


# --- proper scores and classification metrics --------------------------------
def _reduce(values: np.ndarray, reduction: str, fname: str) -> float | np.ndarray:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"calibration.metrics.{fname}: reduction must be 'mean', 'sum' or 'none', "
                         f"got {reduction!r}")
    return values if reduction == "none" else float(getattr(values, reduction)())


def _scores_labels(scores: ArrayLike, labels: ArrayLike, fname: str) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.as_tensor(_to_numpy(scores, np.float64))
    y = torch.as_tensor(_to_numpy(labels).astype(np.int64))
    if s.ndim != 2 or y.ndim != 1 or s.shape[0] != y.shape[0]:
        raise ValueError(f"calibration.metrics.{fname}: expected scores (N, C) and int labels (N,), "
                         f"got {tuple(s.shape)} and {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= s.shape[1]):
        raise ValueError(f"calibration.metrics.{fname}: labels must lie in [0, {s.shape[1]}), "
                         f"got range [{int(y.min())}, {int(y.max())}]")
    return s, y


def _brier_rows(p: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-row ``sum_k (p_k - 1[k = y])^2`` of torch probabilities ``p`` (N, C)."""
    return ((p * p).sum(dim=1) - 2.0 * p.gather(1, y.unsqueeze(1)).squeeze(1) + 1.0).numpy()


def nll(scores: ArrayLike, labels: ArrayLike, from_logits: bool = True, reduction: str = "mean",
        eps: float = 1e-12) -> float | np.ndarray:
    """Negative log-likelihood of the true class (natural log) of ``scores`` (N, C): logits
    (log-softmax in float64) or, ``from_logits=False``, probabilities clipped below at ``eps``.
    ``reduction``: ``mean`` / ``sum`` (float) or ``none`` (numpy array per sample)."""
    s, y = _scores_labels(scores, labels, "nll")
    logp = torch.log_softmax(s, dim=1) if from_logits else torch.log(s.clamp_min(eps))
    values = -logp.gather(1, y.unsqueeze(1)).squeeze(1).numpy()
    return _reduce(values, reduction, "nll")


def brier(probs: ArrayLike, labels: ArrayLike, from_logits: bool = False,
          reduction: str = "mean") -> float | np.ndarray:
    """Multi-class Brier score: ``sum_k (p_k - 1[k = y])^2``, mean over samples (range [0, 2]).
    ``probs``: (N, C) probabilities (or logits with ``from_logits=True``); ``labels``: (N,) int;
    ``reduction`` as in ``nll``."""
    p, y = _scores_labels(probs, labels, "brier")
    return _reduce(_brier_rows(torch.softmax(p, dim=1) if from_logits else p, y), reduction, "brier")


def _preds_labels(preds_or_scores: ArrayLike, labels: ArrayLike, fname: str) -> tuple[np.ndarray, np.ndarray]:
    p = _to_numpy(preds_or_scores)
    if p.ndim not in (1, 2):
        raise ValueError(f"calibration.metrics: predictions must be (N,) ints or (N, C) scores, got {p.shape}")
    p = p.argmax(axis=1) if p.ndim == 2 else p.astype(np.int64)
    y = _to_numpy(labels).astype(np.int64).reshape(-1)
    if p.shape != y.shape or y.size == 0:
        raise ValueError(f"calibration.metrics.{fname}: {p.shape[0]} predictions vs {y.shape[0]} labels")
    return p, y


def accuracy(preds_or_scores: ArrayLike, labels: ArrayLike) -> float:
    """Top-1 accuracy (fraction). ``preds_or_scores``: (N,) predicted ints or (N, C) scores (argmax)."""
    p, y = _preds_labels(preds_or_scores, labels, "accuracy")
    return float((p == y).mean())


def macro_f1(preds_or_scores: ArrayLike, labels: ArrayLike) -> float:
    """Macro-F1 (fraction) over the classes present in ``labels`` (Dassl's choice:
    ``f1_score(..., average='macro', labels=np.unique(y_true))``).
    Per class ``F1 = 2 TP / (2 TP + FP + FN)``."""
    p, y = _preds_labels(preds_or_scores, labels, "macro_f1")
    n = int(max(p.max(), y.max())) + 1
    if min(p.min(), y.min()) < 0:
        raise ValueError("calibration.metrics.macro_f1: labels and predictions must be >= 0")
    tp = np.bincount(y[p == y], minlength=n)
    n_true = np.bincount(y, minlength=n)
    n_pred = np.bincount(p, minlength=n)
    present = n_true > 0
    f1 = 2.0 * tp[present] / (n_true[present] + n_pred[present])
    return float(f1.mean())


def confidences_from_probs(probs: ArrayLike, labels: ArrayLike,
                           from_logits: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(confidence float64 (N,), correct bool (N,))`` numpy arrays of the top label (argmax, first
    on ties) of ``probs`` (N, C) (logits with ``from_logits=True``: softmax in float64)."""
    p = _to_numpy(probs, np.float64)
    if from_logits:
        p = torch.softmax(torch.as_tensor(p), dim=1).numpy()
    y = _to_numpy(labels).astype(np.int64).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"calibration.metrics.confidences_from_probs: expected (N, C) and (N,), "
                         f"got {p.shape} and {y.shape}")
    pred = p.argmax(axis=1)
    conf = p[np.arange(p.shape[0]), pred]
    return conf, pred == y


def classification_stats(logits: ArrayLike, labels: ArrayLike) -> dict[str, np.ndarray]:
    """Per-sample numpy arrays (N,) of a batch of logits (softmax in float64), for accumulating
    evaluators: ``confidence`` (max softmax), ``pred`` (argmax), ``nll`` and ``brier``."""
    s, y = _scores_labels(logits, labels, "classification_stats")
    logp = torch.log_softmax(s, dim=1)
    p = logp.exp()
    conf, pred = p.max(dim=1)
    return {"confidence": conf.numpy(), "pred": pred.numpy(),
            "nll": -logp.gather(1, y.unsqueeze(1)).squeeze(1).numpy(), "brier": _brier_rows(p, y)}


def classification_metrics(confidence: ArrayLike, pred: ArrayLike, labels: ArrayLike,
                           nll_values: ArrayLike | None = None, brier_values: ArrayLike | None = None,
                           proximity: ArrayLike | None = None, n_bins: int = 10) -> OrderedDict[str, float]:
    """All single-label metrics, an OrderedDict of fractions in the evaluator's order: ``accuracy``,
    ``error_rate``, ``macro_f1``, ``ece``, ``mce`` (weighted), ``adaptive_ece``, ``piece`` (with
    ``proximity``), ``mce_max`` (textbook), ``nll`` and ``brier`` (means of the values, when given)."""
    conf = _to_numpy(confidence, np.float64).reshape(-1)
    p = _to_numpy(pred).astype(np.int64).reshape(-1)
    y = _to_numpy(labels).astype(np.int64).reshape(-1)
    correct = p == y
    out: OrderedDict[str, float] = OrderedDict()
    out["accuracy"] = float(correct.mean())
    out["error_rate"] = 1.0 - out["accuracy"]
    out["macro_f1"] = macro_f1(p, y)
    out["ece"] = ece(conf, correct, n_bins)
    out["mce"] = mce(conf, correct, n_bins, weighted=True)
    out["adaptive_ece"] = adaptive_ece(conf, correct, n_bins)
    if proximity is not None:
        out["piece"] = piece(conf, correct, proximity, n_bins)
    out["mce_max"] = mce(conf, correct, n_bins, weighted=False)
    if nll_values is not None:
        out["nll"] = float(np.mean(_to_numpy(nll_values, np.float64)))
    if brier_values is not None:
        out["brier"] = float(np.mean(_to_numpy(brier_values, np.float64)))
    return out
