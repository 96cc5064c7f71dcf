"""Multi-label metrics: calibration over image-class pairs, mAP, CF1/OF1 (vectorised).

Label encoding: ``targets[i, j]`` is 1 (positive), 0 (negative) or -1 (unknown), dropped from
every metric; ``probs`` (N, C) are per-class probabilities.

The probability-map contract (the one statement of it; other modules point here): on a
multi-label dataset every trainer maps its scores to *calibration logits*
``z_j = scale * s_j + bias`` (CLIP trainers: ``s_j`` the cosine of the image and class j's text
feature, ``scale = TRAINER.<M>.BCE_SCALE`` with 0 meaning the backbone's logit scale, ``bias =
BCE_BIAS``; TaI-DPT: its merged cosine and the fitted ``(a, b)`` of ``PROB_FIT``), and
``p_j = sigmoid(z_j)`` is THE probability: the BCE loss trains it, the regularizers receive it
(``probs``), the ``MultiLabelClassification`` evaluator receives ``z`` and applies the same
sigmoid (float64), saved outputs hold ``z``, and ``results.json`` records the map
(``probability_map``). mAP depends only on the order of ``z``.

Top-label decomposition: each valid (image, class) pair is a binary prediction ``1[p >= 0.5]``
with confidence ``max(p, 1 - p)``, correct when it equals the label; the pairs go through
``calibration.metrics``' single-label metrics. All results are fractions.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Mapping

import numpy as np

from .metrics import ArrayLike, _to_numpy, adaptive_ece, ece, equal_width_bin_index, mce, piece

Groups = Mapping[str, Iterable[int]]  # group name -> class indices


def _prep(probs: ArrayLike, targets: ArrayLike, fname: str) -> tuple[np.ndarray, np.ndarray]:
    p = _to_numpy(probs, np.float64)
    y = _to_numpy(targets)
    if p.ndim != 2 or y.shape != p.shape:
        raise ValueError(f"calibration.multilabel.{fname}: expected probs and targets of the same shape "
                         f"(N, C), got {tuple(p.shape)} and {tuple(y.shape)}")
    y = y.astype(np.int8) if y.dtype != np.int8 else y
    if y.size and (y.min() < -1 or y.max() > 1):
        raise ValueError(f"calibration.multilabel.{fname}: targets must be 1 (positive), 0 (negative) or -1 "
                         f"(unknown), got values in [{int(y.min())}, {int(y.max())}]")
    return np.ascontiguousarray(p), np.ascontiguousarray(y)


class _Pairs:
    """Top-label decomposition of an (N, C) problem, computed once and shared."""

    def __init__(self, probs: ArrayLike, targets: ArrayLike, fname: str, threshold: float = 0.5) -> None:
        self.p, self.y = _prep(probs, targets, fname)
        self.n, self.c = self.p.shape
        self.valid = self.y >= 0
        self.all_valid = bool(self.valid.all())
        self.pos = self.y == 1
        pred = self.p >= threshold
        self.conf2d = np.where(pred, self.p, 1.0 - self.p)
        self.correct2d = pred == self.pos

    def flat(self, a2d: np.ndarray) -> np.ndarray:
        """Values of the valid pairs, row-major."""
        return a2d.reshape(-1) if self.all_valid else a2d[self.valid]

    def flat_cols(self, a2d: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Values of the valid pairs of the given classes."""
        sub = a2d[:, cols]
        return sub.reshape(-1) if self.all_valid else sub[self.valid[:, cols]]


def binary_pairs(probs: ArrayLike, targets: ArrayLike, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """The top-label decomposition (module docstring) as 1-D arrays over the valid pairs, row-major:
    ``confidence``, ``correct`` (bool), ``prob``, ``target`` (0/1), ``class_index``, ``row_index``;
    and ``mask`` (N, C), the valid entries."""
    pr = _Pairs(probs, targets, "binary_pairs", threshold)
    grid = np.broadcast_to(np.arange(pr.c, dtype=np.intp), (pr.n, pr.c))
    rows = np.broadcast_to(np.arange(pr.n, dtype=np.intp)[:, None], (pr.n, pr.c))
    return {"confidence": pr.flat(pr.conf2d), "correct": pr.flat(pr.correct2d), "prob": pr.flat(pr.p),
            "target": pr.flat(pr.y).astype(np.int64), "class_index": pr.flat(grid), "row_index": pr.flat(rows),
            "mask": pr.valid}


def _classwise_ece(pr: _Pairs, n_bins: int) -> float:
    """Mean over classes (with >= 1 valid entry) of each class's positive-class ECE."""
    width = n_bins + 2  # ECE's bins 1..n_bins, plus 0 (p <= 0) and n_bins + 1 (p > 1): in no bin
    bins = equal_width_bin_index(pr.p.reshape(-1), n_bins, rule="ece").reshape(pr.n, pr.c)
    key = bins + (np.arange(pr.c, dtype=np.intp) * width)[None, :]
    d = pr.pos - pr.p  # target - p
    key, d = pr.flat(key), pr.flat(d)
    gap = np.bincount(key, weights=d, minlength=pr.c * width).reshape(pr.c, width)
    n_c = pr.valid.sum(axis=0)
    has = n_c > 0
    if not has.any():
        return float("nan")
    return float((np.abs(gap[:, 1:-1]).sum(axis=1)[has] / n_c[has]).mean())


def _nanmean(v: np.ndarray) -> float:
    """Mean of the non-NaN values; NaN when there are none."""
    return float("nan") if v.size == 0 or np.isnan(v).all() else float(np.nanmean(v))


def _class_mask(idx: Iterable[int], n_classes: int, name: str) -> np.ndarray:
    idx = np.asarray(list(idx), dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_classes):
        raise ValueError(f"calibration.multilabel: group {name!r} has class indices outside [0, {n_classes})")
    return idx


def _calibration(
        pr: _Pairs, n_bins: int, groups: Groups | None,
) -> tuple[OrderedDict[str, float], OrderedDict[str, tuple[float, float]], np.ndarray, np.ndarray]:
    conf, correct = pr.flat(pr.conf2d), pr.flat(pr.correct2d)
    if conf.size == 0:
        raise ValueError("calibration.multilabel: no valid (target != -1) entries")
    out = OrderedDict()
    out["ece"] = ece(conf, correct, n_bins)
    out["mce"] = mce(conf, correct, n_bins, weighted=True)
    out["adaptive_ece"] = adaptive_ece(conf, correct, n_bins)
    out["ece_positive"] = ece(pr.flat(pr.p), pr.flat(pr.pos), n_bins)
    out["classwise_ece"] = _classwise_ece(pr, n_bins)
    out["accuracy"] = float(correct.mean())
    group_out = OrderedDict()
    for name, idx in (groups or {}).items():
        cols = _class_mask(idx, pr.c, name)
        gc, ga = pr.flat_cols(pr.conf2d, cols), pr.flat_cols(pr.correct2d, cols)
        group_out[name] = (ece(gc, ga, n_bins), float(ga.mean())) if gc.size else (float("nan"), float("nan"))
    return out, group_out, conf, correct


def multilabel_calibration(probs: ArrayLike, targets: ArrayLike, n_bins: int = 10,
                           groups: Groups | None = None) -> OrderedDict[str, float]:
    """Calibration over the valid image-class pairs (fractions): ``ece``, ``mce`` (weighted),
    ``adaptive_ece`` (top-label decomposition); ``ece_positive`` (ECE's bins over p, mean p vs the
    positive rate); ``classwise_ece`` (positive-class ECE per class, mean over classes with a valid
    entry); ``accuracy`` (correct pairs at 0.5). ``groups`` (name -> class indices) add
    ``ece_<name>`` and ``accuracy_<name>`` over the group's pairs (NaN without valid pairs)."""
    out, group_out, _, _ = _calibration(_Pairs(probs, targets, "multilabel_calibration"), n_bins, groups)
    for name, (g_ece, g_acc) in group_out.items():
        out[f"ece_{name}"] = g_ece
        out[f"accuracy_{name}"] = g_acc
    return out


def _ap_per_class(pr: _Pairs) -> np.ndarray:
    """AP of each class from sorted scores: for every positive with score s,
    precision = #positives >= s / #valid >= s (tied scores form one threshold)."""
    ap = np.full(pr.c, np.nan)
    s_t = np.ascontiguousarray(pr.p.T)
    y_t = np.ascontiguousarray(pr.y.T)
    if pr.all_valid:
        srt = np.sort(s_t, axis=1)
        n_valid = np.full(pr.c, pr.n)
    else:
        srt = np.sort(np.where(y_t >= 0, s_t, np.nan), axis=1)  # ignored entries sort last
        n_valid = (y_t >= 0).sum(axis=1)
    for j in range(pr.c):  # a loop over classes, not samples
        pos = s_t[j][y_t[j] == 1]
        if pos.size == 0:
            continue
        pos_sorted = np.sort(pos)
        n_ge = n_valid[j] - np.searchsorted(srt[j, : n_valid[j]], pos, side="left")
        tp_ge = pos.size - np.searchsorted(pos_sorted, pos, side="left")
        ap[j] = float(np.mean(tp_ge / n_ge))
    return ap


def average_precision_per_class(scores: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """Non-interpolated AP of each class, ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score
    thresholds (``sklearn.metrics.average_precision_score``; ties form one threshold); array (C,),
    NaN for a class without positives; -1 entries ignored."""
    return _ap_per_class(_Pairs(scores, targets, "average_precision_per_class"))


def mean_average_precision(scores: ArrayLike, targets: ArrayLike) -> float:
    """mAP (fraction): mean of ``average_precision_per_class`` over the classes with a positive
    (NaN if none has one)."""
    return _nanmean(average_precision_per_class(scores, targets))


def _f1(pr: _Pairs, threshold: float = 0.5) -> tuple[float, float]:
    pred = (pr.p >= threshold) & pr.valid
    tp = (pred & pr.pos).sum(axis=0).astype(np.float64)
    n_pred = pred.sum(axis=0).astype(np.float64)
    n_pos = pr.pos.sum(axis=0).astype(np.float64)
    has = n_pos > 0
    if not has.any():
        return 0.0, 0.0
    cp = np.where(n_pred[has] > 0, tp[has] / np.maximum(n_pred[has], 1), 0.0).mean()
    cr = (tp[has] / n_pos[has]).mean()
    op = tp.sum() / n_pred.sum() if n_pred.sum() > 0 else 0.0
    orr = tp.sum() / n_pos.sum()
    cf1 = 2 * cp * cr / (cp + cr) if cp + cr > 0 else 0.0
    of1 = 2 * op * orr / (op + orr) if op + orr > 0 else 0.0
    return float(cf1), float(of1)


def f1_scores(probs: ArrayLike, targets: ArrayLike, threshold: float = 0.5) -> tuple[float, float]:
    """``(CF1, OF1)`` (fractions) at ``p >= threshold``, -1 entries ignored: CF1 = 2 CP CR / (CP + CR)
    with CP, CR the means over classes with a positive of per-class precision (0 without a
    predicted positive) and recall; OF1 the same from micro counts. A zero denominator gives 0."""
    return _f1(_Pairs(probs, targets, "f1_scores"), threshold)


def multilabel_metrics(
        probs: ArrayLike, targets: ArrayLike, n_bins: int = 10, groups: Groups | None = None,
        proximity: ArrayLike | None = None) -> tuple[OrderedDict[str, float], np.ndarray, np.ndarray, np.ndarray]:
    """Everything the multi-label evaluator reports, sharing one decomposition: ``(results,
    confidences, correct, ap_per_class)``. ``results`` (OrderedDict, fractions): ``mAP``, ``cf1``,
    ``of1``, the keys of :func:`multilabel_calibration` but ``accuracy``, ``piece`` (with
    ``proximity``, one value per image carried by each of its pairs), ``accuracy``, then per group
    ``mAP_<g>``, ``ece_<g>``, ``accuracy_<g>``; the arrays: the valid pairs' top-label confidences
    and correctness, and the (C,) per-class AP."""
    pr = _Pairs(probs, targets, "multilabel_metrics")
    ap = _ap_per_class(pr)
    cf1, of1 = _f1(pr)
    cal, group_out, conf, correct = _calibration(pr, n_bins, groups)
    res = OrderedDict()
    res["mAP"] = _nanmean(ap)
    res["cf1"], res["of1"] = cf1, of1
    for key in ("ece", "mce", "adaptive_ece", "ece_positive", "classwise_ece"):
        res[key] = cal[key]
    if proximity is not None:
        prox = _to_numpy(proximity, np.float64).reshape(-1)
        if prox.shape[0] != pr.n:
            raise ValueError(f"calibration.multilabel.multilabel_metrics: proximity must have one value "
                             f"per image ({pr.n}), got {prox.shape[0]}")
        res["piece"] = piece(conf, correct, pr.flat(np.broadcast_to(prox[:, None], (pr.n, pr.c))), n_bins)
    res["accuracy"] = cal["accuracy"]
    for name, (g_ece, g_acc) in group_out.items():
        res[f"mAP_{name}"] = _nanmean(ap[_class_mask(groups[name], pr.c, name)])
        res[f"ece_{name}"] = g_ece
        res[f"accuracy_{name}"] = g_acc
    return res, conf, correct, ap


def signed_class_calibration(probs: ArrayLike, targets: ArrayLike, threshold: float = 0.5,
                             groups: Groups | None = None) -> tuple[np.ndarray, OrderedDict[str, float]]:
    """Signed calibration gap of every class, over- (> 0) or under-confident (< 0): the mean top-label
    confidence minus the accuracy over its valid pairs (the CCR paper's Figure 2). Returns ``gaps``
    (float64 (C,), NaN without valid pairs) and ``group_gaps`` (name -> mean of the group's gaps,
    NaN when none has one) for ``groups`` (name -> class indices)."""
    pr = _Pairs(probs, targets, "signed_class_calibration", threshold)
    diff = np.where(pr.valid, pr.conf2d - pr.correct2d, 0.0)
    n_c = pr.valid.sum(axis=0)
    gaps = np.full(pr.c, np.nan)
    np.divide(diff.sum(axis=0), n_c, out=gaps, where=n_c > 0)
    group_gaps = OrderedDict()
    for name, idx in (groups or {}).items():
        group_gaps[name] = _nanmean(gaps[_class_mask(idx, pr.c, name)])
    return gaps, group_gaps
