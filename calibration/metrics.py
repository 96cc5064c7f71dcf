"""Classification and calibration metrics (vectorised, framework-agnostic).

Every metric takes numpy arrays or torch tensors (any device) and returns a
Python float holding a FRACTION (evaluators multiply by 100). No metric loops
over samples in Python (see "Binning engine" below: blocked grid passes and
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
from collections import OrderedDict

import numpy as np
import torch

__all__ = [
    "ece",
    "mce",
    "adaptive_ece",
    "piece",
    "knn_proximity",
    "nll",
    "brier",
    "accuracy",
    "macro_f1",
    "reliability_bins",
    "confidences_from_probs",
    "classification_stats",
    "classification_metrics",
    "quantile_bin_index",
    "equal_width_bin_index",
]

# Edges closer than this are merged (the rule scikit-learn's quantile binning used).
_MIN_BIN_WIDTH = 1e-8


# ----------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------
def _to_numpy(x, dtype=None):
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


def _prep(confidences, correct, fname):
    c = _to_numpy(confidences, np.float64)
    a = _to_numpy(correct)
    if c.ndim != 1 or a.ndim != 1:
        raise ValueError(
            f"calibration.metrics.{fname}: confidences and correct must be 1-D, "
            f"got shapes {tuple(c.shape)} and {tuple(a.shape)}"
        )
    if c.shape[0] != a.shape[0]:
        raise ValueError(
            f"calibration.metrics.{fname}: confidences ({c.shape[0]}) and correct "
            f"({a.shape[0]}) differ in length"
        )
    if c.shape[0] == 0:
        raise ValueError(f"calibration.metrics.{fname}: got no samples")
    if a.dtype != np.bool_ and a.dtype != np.float64:
        a = a.astype(np.float64)
    return np.ascontiguousarray(c), np.ascontiguousarray(a)


def _check_bins(n_bins, fname, name="n_bins"):
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"calibration.metrics.{fname}: {name} must be a positive integer, got {n_bins!r}")
    return int(n_bins)


# ----------------------------------------------------------------------------
# Binning engine
#
# Every bin rule is an exact float64 comparison with the edges: a value's bin is
# the number of edges below it (``edge < x`` for ECE's (lo, hi] bins,
# ``edge <= x`` for the [lo, hi) bins). Comparing every sample with every edge
# costs one pass per edge, so the samples are first put in the cells of a
# uniform grid, ``cell = floor((x - lo) * scale)`` (_G + 1 cells), in cache-sized
# blocks, and np.bincount sums (correct - confidence) and counts per cell.
# Rounding is monotone, so every sample of a cell lies on the same side of an
# edge, except in the one cell the edge itself maps to (computed with the same
# float operations); the samples of those few cells are binned one by one with
# exact comparisons. Equal-mass edges reuse the grid: its histogram locates the
# order statistics np.quantile needs, and only the samples of those cells are
# sorted.
# ----------------------------------------------------------------------------
_BLOCK = 1 << 16
_G = 1 << 12
# (np.take is called with mode="clip": indices are always in range, and the default
# mode="raise" buffers a copy when out= is given)
_MAX_COMPARE_EDGES = 48  # edge lists longer than this are counted with searchsorted
_KEEP_INTP_MAX = 1 << 24  # kept grid cells are intp up to this many samples, int16 above


def _count_edges(x, edges, strict, out=None, tmp=None):
    """Number of ``edges`` that are ``< x`` (strict) or ``<= x``, exactly, for each x."""
    edges = np.asarray(edges, dtype=np.float64)
    if edges.size > _MAX_COMPARE_EDGES:
        return np.searchsorted(edges, x, side="left" if strict else "right")
    if out is None:
        out = np.empty(x.shape[0], dtype=np.int16)
        tmp = np.empty(x.shape[0], dtype=bool)
    out.fill(0)
    cmp = np.greater if strict else np.greater_equal
    for e in edges:
        cmp(x, e, out=tmp)
        np.add(out, tmp, out=out, casting="unsafe")
    return out


class _Grid:
    """Uniform grid of _G + 1 cells over the range of x (see the section comment).

    With 0 <= x <= 1 the grid is the unit interval with scale _G (a power of two:
    cells are exactly [g / _G, (g + 1) / _G) and cell _G holds only x == 1.0);
    otherwise it spans [min(x), max(x)].
    """

    def __init__(self, x, unit_ok=True):
        self.x = x
        self.mn, self.mx = x.min(), x.max()
        if not (np.isfinite(self.mn) and np.isfinite(self.mx)):
            raise ValueError("contains NaN or infinite values")
        if unit_ok and self.mn >= 0.0 and self.mx <= 1.0:
            self.lo, self.scale, self.unit = None, np.float64(_G), True
        else:
            span = self.mx - self.mn
            scale = np.float64(_G) / span if span > 0 else np.float64(0.0)
            if not np.isfinite(scale):
                scale = np.float64(0.0)  # degenerate range: every sample resolved exactly
            self.lo, self.scale, self.unit = self.mn, scale, False

    def values(self, v, out=None):
        """(v - lo) * scale with the float operations used for the samples."""
        v = np.asarray(v, dtype=np.float64)
        if self.lo is None:
            return np.multiply(v, self.scale, out=out)
        out = np.subtract(v, self.lo, out=out)
        return np.multiply(out, self.scale, out=out)

    def table(self, edges, strict):
        """(bin of each cell as int16, -1 for cells needing per-sample resolution; bool mask of those)."""
        edges = np.asarray(edges, dtype=np.float64)
        ge = self.values(edges)
        fl = np.floor(ge)
        thr = fl.copy()  # cell g lies above edge i iff g > thr[i]
        susp = np.zeros(_G + 1, dtype=bool)
        for i in range(edges.size):
            if fl[i] < 0 or fl[i] > _G:
                continue  # the edge is outside the grid: every cell is on one side
            g = int(fl[i])
            if self.unit and g == _G:
                # cell _G holds only x == 1.0 and the edge is >= 1.0: decide once
                above = (1.0 > edges[i]) if strict else (1.0 >= edges[i])
                thr[i] = g - 0.5 if above else g
                continue
            if self.unit and ge[i] == fl[i] and not strict:
                thr[i] = g - 0.5  # cell g = [edge, ...): all its samples are >= edge
                continue
            susp[g] = True
        table = np.searchsorted(np.sort(thr), np.arange(_G + 1), side="left").astype(np.int16)
        table[susp] = -1
        return table, susp

    def accumulate(self, a=None, c=None, counts=False, keep_cells=False, cand_lut=None):
        """One blocked pass: per-cell counts, per-cell sums of (a - c) when ``a`` is
        given, the cells of all samples when ``keep_cells``, and the indices of the
        samples whose cell is flagged in ``cand_lut``."""
        x = self.x
        n = x.shape[0]
        bs = min(n, _BLOCK)
        buf = np.empty(bs)
        cbuf = np.empty(bs, dtype=np.intp)  # bincount and take want intp indices
        # kept cells: intp (fast take/bincount) unless that would be large
        cells_all = np.empty(n, dtype=np.intp if n <= _KEEP_INTP_MAX else np.int16) if keep_cells else None
        mbuf = np.empty(bs, dtype=bool) if cand_lut is not None else None
        cnt = np.zeros(_G + 1, dtype=np.int64) if counts else None
        dsum = np.zeros(_G + 1) if a is not None else None
        cand = []
        for s in range(0, n, _BLOCK):
            e = min(n, s + _BLOCK)
            m = e - s
            v = self.values(x[s:e], out=buf[:m])
            cb = cbuf[:m]
            np.copyto(cb, v, casting="unsafe")  # floor of a non-negative value
            if keep_cells:
                cells_all[s:e] = cb
            if counts:
                cnt += np.bincount(cb, minlength=_G + 1)
            if a is not None:
                np.subtract(a[s:e], c[s:e], out=v)
                dsum += np.bincount(cb, weights=v, minlength=_G + 1)
            if cand_lut is not None:
                mb = mbuf[:m]
                np.take(cand_lut, cb, out=mb, mode="clip")
                hit = np.flatnonzero(mb)
                if hit.size:
                    cand.append(hit + s)
        cand = np.concatenate(cand) if cand else np.empty(0, dtype=np.intp)
        return cnt, dsum, cells_all, cand


def _binned_sums(grid, edges, strict, a, c, counts=False, conf_sums=False):
    """Exact per-bin sums for bins ``#(edges < x)`` (strict) or ``#(edges <= x)``
    (len(edges) + 1 bins) of grid.x: (sum of a - c, counts or None, sum of c or None)."""
    nb = len(edges) + 1
    table, susp = grid.table(edges, strict)
    cnt, dsum, _, cand = grid.accumulate(a, c, counts=counts, cand_lut=susp)
    ok = ~susp
    gap = np.bincount(table[ok], weights=dsum[ok], minlength=nb)
    n_b = np.bincount(table[ok], weights=cnt[ok], minlength=nb).astype(np.int64) if counts else None
    sc = None
    if conf_sums:  # rarely needed: a second pass with the bins of every sample
        sc = np.bincount(_bin_index(grid, edges, strict, table, susp), weights=c, minlength=nb)
    if cand.size:
        xb = grid.x[cand]
        bins_c = _count_edges(xb, edges, strict)
        gap += np.bincount(bins_c, weights=np.subtract(a[cand], c[cand]), minlength=nb)
        if counts:
            n_b += np.bincount(bins_c, minlength=nb)
    return gap, n_b, sc


def _bin_index(grid, edges, strict, table=None, susp=None):
    """Exact bin ``#(edges < x)`` (strict) or ``#(edges <= x)`` of every sample of grid.x."""
    if table is None:
        table, susp = grid.table(edges, strict)
    bins = np.take(table, grid.accumulate(keep_cells=True)[2], mode="clip")
    bad = np.flatnonzero(bins < 0)
    if bad.size:
        bins[bad] = _count_edges(grid.x[bad], edges, strict)
    return bins


def equal_width_bin_index(x, n_bins=10, rule="ece"):
    """Exact equal-width bin of each value (edges ``linspace(0, 1, n_bins+1)``).

    ``rule="ece"``: ``(lo, hi]`` bins numbered 1..n_bins, 0 for x <= 0 and
    n_bins + 1 for x > 1 (ECE's convention). ``rule="right"``: ``[lo, hi)`` with
    the last bin closed, numbered 0..n_bins-1 (``np.digitize`` on the interior
    edges; MCE's and PIECE's convention). Returns an int16 array.
    """
    x = np.ascontiguousarray(_to_numpy(x, np.float64).reshape(-1))
    n_bins = _check_bins(n_bins, "equal_width_bin_index")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    if rule == "ece":
        return _bin_index(_equal_width_grid(x, "equal_width_bin_index"), edges, True)
    if rule == "right":
        return _bin_index(_equal_width_grid(x, "equal_width_bin_index"), edges[1:-1], False)
    raise ValueError(f"calibration.metrics.equal_width_bin_index: rule must be 'ece' or 'right', got {rule!r}")


def _equal_width_grid(c, fname):
    try:
        return _Grid(c)
    except ValueError as e:
        raise ValueError(f"calibration.metrics.{fname}: confidences {e}") from None


# ----------------------------------------------------------------------------
# equal-mass edges: np.quantile(x, linspace(0, 1, n + 1)) (linear), bit for bit
# ----------------------------------------------------------------------------
_SELECT_MIN_N = 1 << 16  # below this, np.quantile is called directly


def _quantile_plan(n, n_bins):
    """numpy's linear rule: virtual index (n - 1) q, neighbours floor and floor + 1."""
    q = np.linspace(0.0, 1.0, n_bins + 1)
    vi = (n - 1) * q
    prev = np.floor(vi)
    nxt = prev + 1
    above = vi >= n - 1
    prev[above] = n - 1
    nxt[above] = n - 1
    prev = prev.astype(np.intp)
    nxt = nxt.astype(np.intp)
    gamma = vi - prev
    gamma[above] = 0.0
    return q, prev, nxt, gamma


def _lerp(a, b, gamma):
    """numpy's two-sided linear interpolation (exact at both ends)."""
    diff = b - a
    out = a + diff * gamma
    hi_side = gamma >= 0.5
    out[hi_side] = (b - diff * (1 - gamma))[hi_side]
    return out


class _EqualMass:
    """Equal-mass binning of x: kept edges (zero-width bins merged) and the grid pass
    that found them (cells, counts, per-cell sums), reused to bin the samples."""

    def __init__(self, x, n_bins, a=None, c=None, what="values"):
        self.x = x
        try:
            self.grid = _Grid(x, unit_ok=False)
        except ValueError as e:
            raise ValueError(f"{what} {e}") from None
        self.constant = self.grid.mn == self.grid.mx
        self.cnt, self.dsum, self.cells, _ = self.grid.accumulate(a, c, counts=True, keep_cells=True)
        self.cand = np.empty(0, dtype=np.intp)
        self.need = np.zeros(_G + 1, dtype=bool)
        if self.constant:
            self.edges = None
            return
        raw, self.cand, self.need = _select_quantiles(x, n_bins, self.cnt, self.cells)
        keep = np.ediff1d(raw, to_begin=np.inf) > _MIN_BIN_WIDTH
        self.edges = raw[keep]

    @property
    def n_bins(self):
        return 1 if self.edges is None else len(self.edges) - 1

    def _susp_samples(self, susp):
        """Indices of the samples in flagged cells."""
        if not susp.any():
            return np.empty(0, dtype=np.intp)
        if self.cand.size and not (susp & ~self.need).any():
            return self.cand[np.take(susp, self.cells[self.cand], mode="clip")]
        return np.flatnonzero(np.take(susp, self.cells, mode="clip"))

    def gap_sums(self, a, c):
        """Per-bin sums of (a - c) ([lo, hi) bins, last closed); needs the pass to have had a, c."""
        if self.edges is None:
            return np.array([self.dsum.sum()])
        inner = self.edges[1:-1]
        nb = len(inner) + 1
        table, susp = self.grid.table(inner, strict=False)
        ok = ~susp
        gap = np.bincount(table[ok], weights=self.dsum[ok], minlength=nb)
        idx = self._susp_samples(susp)
        if idx.size:
            bins = _count_edges(self.x[idx], inner, strict=False)
            gap += np.bincount(bins, weights=np.subtract(a[idx], c[idx]), minlength=nb)
        return gap

    def bin_index(self):
        """Bin of every sample (int16), [lo, hi) with the last bin closed."""
        if self.edges is None:
            return np.zeros(self.x.shape[0], dtype=np.int16)
        inner = self.edges[1:-1]
        table, susp = self.grid.table(inner, strict=False)
        bins = np.take(table, self.cells, mode="clip")
        idx = self._susp_samples(susp)
        if idx.size:
            bins[idx] = _count_edges(self.x[idx], inner, strict=False)
        return bins


def _select_quantiles(x, n_bins, cnt, cells):
    """np.quantile(x, linspace(0, 1, n_bins + 1)) from the grid histogram ``cnt`` and
    the int16 ``cells``: only the samples of the cells holding the needed order
    statistics are sorted. Returns (edges, indices of those samples, cell mask)."""
    n = x.shape[0]
    need = np.zeros(_G + 1, dtype=bool)
    if n < _SELECT_MIN_N:
        return np.quantile(x, np.linspace(0.0, 1.0, n_bins + 1)), np.empty(0, dtype=np.intp), need
    _, prev, nxt, gamma = _quantile_plan(n, n_bins)
    ranks = np.concatenate([prev, nxt])
    cum = np.cumsum(cnt)
    uniq = np.unique(ranks)
    cell_of = np.searchsorted(cum, uniq, side="right")
    need[cell_of] = True
    cand = np.flatnonzero(np.take(need, cells, mode="clip"))
    vals = np.sort(x[cand])
    sel = np.where(need, cnt, 0)
    start = np.cumsum(sel) - sel
    pos = start[cell_of] + (uniq - (cum[cell_of] - cnt[cell_of]))
    stats = vals[pos][np.searchsorted(uniq, ranks)]
    return _lerp(stats[: n_bins + 1], stats[n_bins + 1:], gamma), cand, need


def _quantile_edges(x, n_bins):
    """``np.quantile(x, np.linspace(0, 1, n_bins + 1))`` (linear), computed as the metrics do."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    if x.min() == x.max():
        return np.full(n_bins + 1, x.min())
    grid = _Grid(x, unit_ok=False)
    cnt, _, cells, _ = grid.accumulate(counts=True, keep_cells=True)
    return _select_quantiles(x, n_bins, cnt, cells)[0]


def quantile_bin_index(x, n_bins=10):
    """Equal-mass bin index of each value of 1-D ``x`` and the bin edges used.

    Edges are ``np.quantile(x, np.linspace(0, 1, n_bins+1))`` (linear
    interpolation); an edge within 1e-8 of its predecessor is dropped (zero-width
    bins merged); bins are ``[lo, hi)`` with the last one closed. A constant
    ``x`` gives a single bin. Returns ``(index int64 array, edges)``.
    """
    x = np.ascontiguousarray(_to_numpy(x, np.float64).reshape(-1))
    n_bins = _check_bins(n_bins, "quantile_bin_index")
    em = _EqualMass(x, n_bins, what="calibration.metrics.quantile_bin_index: x")
    edges = np.array([em.grid.mn, em.grid.mx]) if em.edges is None else em.edges
    return em.bin_index().astype(np.int64), edges


# ----------------------------------------------------------------------------
# calibration errors
# ----------------------------------------------------------------------------
def ece(confidences, correct, n_bins=10):
    """Expected calibration error (fraction), TCPT convention.

    ``n_bins`` equal-width bins ``(lo, hi]`` on edges ``linspace(0, 1, n_bins+1)``;
    a confidence of 0 (or outside (0, 1]) lies in no bin but counts in N.
    ``sum_b |acc_b - conf_b| * n_b / N``.
    """
    c, a = _prep(confidences, correct, "ece")
    n_bins = _check_bins(n_bins, "ece")
    grid = _equal_width_grid(c, "ece")
    gap, _, _ = _binned_sums(grid, np.linspace(0.0, 1.0, n_bins + 1), True, a, c)
    return float(np.abs(gap[1:-1]).sum() / c.shape[0])


def mce(confidences, correct, n_bins=10, weighted=True):
    """Maximum calibration error (fraction).

    Equal-width bins ``[lo, hi)`` with the last bin closed at 1 (c = 0 is in the
    first bin). ``weighted=True`` (the TCPT/CCR papers' MCE):
    ``max_b |acc_b - conf_b| * n_b / N``; ``weighted=False`` (textbook MCE):
    ``max_b |acc_b - conf_b|``. The maximum runs over non-empty bins.
    """
    c, a = _prep(confidences, correct, "mce")
    n_bins = _check_bins(n_bins, "mce")
    grid = _equal_width_grid(c, "mce")
    gap, counts, _ = _binned_sums(grid, np.linspace(0.0, 1.0, n_bins + 1)[1:-1], False, a, c, counts=True)
    nz = counts > 0
    gap = np.abs(gap[nz])
    if weighted:
        return float(gap.max() / c.shape[0])
    return float((gap / counts[nz]).max())


def adaptive_ece(confidences, correct, n_bins=10):
    """Adaptive (equal-mass) ECE (fraction), TCPT convention with the linear quantile rule.

    Edges ``np.quantile(c, linspace(0, 1, n_bins+1))`` (linear interpolation),
    edges within 1e-8 of the previous one dropped (zero-width bins merged),
    bins ``[lo, hi)`` with the last one closed; a constant c is one bin.
    ``sum_b |acc_b - conf_b| * n_b / N``. (No ``KBinsDiscretizer``: its default
    quantile rule changed in scikit-learn 1.9 and it subsamples above 200,000
    points.)
    """
    c, a = _prep(confidences, correct, "adaptive_ece")
    n_bins = _check_bins(n_bins, "adaptive_ece")
    em = _EqualMass(c, n_bins, a, c, what="calibration.metrics.adaptive_ece: confidences")
    return float(np.abs(em.gap_sums(a, c)).sum() / c.shape[0])


def piece(confidences, correct, proximity, n_bins=10, n_prox_bins=10):
    """Proximity-informed ECE (fraction).

    Samples are split into ``n_prox_bins`` equal-mass bins of ``proximity``
    (the adaptive-ECE quantile rule: linear ``np.quantile`` edges, zero-width
    bins merged, ``[lo, hi)`` last closed) crossed with ``n_bins`` equal-width
    confidence bins (``[lo, hi)``, last closed, as in ``mce``).
    ``sum_cells |acc - conf| * n / N`` over non-empty cells.
    """
    c, a = _prep(confidences, correct, "piece")
    p = np.ascontiguousarray(_to_numpy(proximity, np.float64))
    if p.ndim != 1 or p.shape[0] != c.shape[0]:
        raise ValueError(
            f"calibration.metrics.piece: proximity must be 1-D with {c.shape[0]} entries, "
            f"got shape {tuple(p.shape)}"
        )
    n_bins = _check_bins(n_bins, "piece")
    n_prox_bins = _check_bins(n_prox_bins, "piece", "n_prox_bins")
    cgrid = _equal_width_grid(c, "piece")
    em = _EqualMass(p, n_prox_bins, what="calibration.metrics.piece: proximity")
    c_inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    p_inner = np.empty(0) if em.edges is None else em.edges[1:-1]
    n_cells = em.n_bins * n_bins
    # cell = prox_bin * n_bins + conf_bin, looked up per grid cell; flagged cells -> negative
    flag = -(1 << 30)
    if em.edges is None:
        ptab, psusp = np.zeros(_G + 1, dtype=np.intp), np.zeros(_G + 1, dtype=bool)
    else:
        ptab, psusp = em.grid.table(p_inner, strict=False)
        ptab = ptab.astype(np.intp) * n_bins
    ptab[psusp] = flag
    ctab, csusp = cgrid.table(c_inner, strict=False)
    ctab = ctab.astype(np.intp)
    ctab[csusp] = flag
    n = c.shape[0]
    bs = min(n, _BLOCK)
    buf, key, ck = np.empty(bs), np.empty(bs, dtype=np.intp), np.empty(bs, dtype=np.intp)
    gap = np.zeros(n_cells)
    for s in range(0, n, _BLOCK):
        e = min(n, s + _BLOCK)
        m = e - s
        kb, cb = key[:m], ck[:m]
        np.take(ptab, em.cells[s:e], out=kb, mode="clip")
        np.copyto(cb, cgrid.values(c[s:e], out=buf[:m]), casting="unsafe")
        np.take(ctab, cb, out=cb, mode="clip")
        np.add(kb, cb, out=kb)
        bad = np.flatnonzero(kb < 0)
        if bad.size:
            i = bad + s
            kb[bad] = _count_edges(p[i], p_inner, False) * n_bins + _count_edges(c[i], c_inner, False)
        d = np.subtract(a[s:e], c[s:e], out=buf[:m])
        gap += np.bincount(kb, weights=d, minlength=n_cells)
    return float(np.abs(gap).sum() / n)


def reliability_bins(confidences, correct, n_bins=10):
    """Per-bin data of a reliability diagram, with ECE's ``(lo, hi]`` bins.

    Returns a dict: ``edges`` (n_bins+1), ``counts``, ``mean_confidence`` and
    ``accuracy`` (n_bins each; NaN for empty bins), ``n_total`` (N, including
    samples in no bin), ``n_unbinned`` (confidences of 0 or outside (0, 1]) and
    ``ece`` (equals ``ece(confidences, correct, n_bins)``).
    """
    c, a = _prep(confidences, correct, "reliability_bins")
    n_bins = _check_bins(n_bins, "reliability_bins")
    grid = _equal_width_grid(c, "reliability_bins")
    gap, counts, sum_c = _binned_sums(grid, np.linspace(0.0, 1.0, n_bins + 1), True, a, c,
                                      counts=True, conf_sums=True)
    n_unbinned = int(counts[0] + counts[-1])
    gap, counts, sum_c = gap[1:-1], counts[1:-1], sum_c[1:-1]
    filled = counts > 0
    denom = np.maximum(counts, 1)
    mean_conf = np.where(filled, sum_c / denom, np.nan)
    acc = np.where(filled, (sum_c + gap) / denom, np.nan)
    return {
        "edges": np.linspace(0.0, 1.0, n_bins + 1),
        "counts": counts,
        "mean_confidence": mean_conf,
        "accuracy": acc,
        "n_total": int(c.shape[0]),
        "n_unbinned": n_unbinned,
        "ece": float(np.abs(gap).sum() / c.shape[0]),
    }


# ----------------------------------------------------------------------------
# proximity
# ----------------------------------------------------------------------------
def knn_proximity(features, k=10, reference=None, chunk_size=None, normalize=False):
    """Mean L2 distance of each row of ``features`` to its ``k`` nearest rows of ``reference``.

    With ``reference=None`` the pool is ``features`` itself and each row's own
    index is excluded (duplicates of a row still count, at distance 0).
    Rows are processed in chunks of ``chunk_size`` (default: sized so a chunk's
    distance block holds about 16M entries), so no N x M matrix is held at
    once. Runs in torch on the device of ``features`` (fp16/bf16 are computed in
    fp32). Neighbours are selected on the expanded squared distance and their
    distances recomputed directly, so values match a brute-force ``cdist``.
    ``normalize=True`` L2-normalises both sets first. Returns a tensor of length
    N on the input's device, or a numpy array when ``features`` is not a tensor.
    """
    as_numpy = not torch.is_tensor(features)
    x = torch.as_tensor(features)
    if x.ndim != 2:
        raise ValueError(f"calibration.metrics.knn_proximity: features must be 2-D (N, D), got {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    if reference is None:
        ref = x
    else:
        ref = torch.as_tensor(reference).to(device=x.device, dtype=x.dtype)
        if ref.ndim != 2 or ref.shape[1] != x.shape[1]:
            raise ValueError(
                "calibration.metrics.knn_proximity: reference must be 2-D with "
                f"{x.shape[1]} columns, got {tuple(ref.shape)}"
            )
    if normalize:
        x = torch.nn.functional.normalize(x, dim=1)
        ref = x if reference is None else torch.nn.functional.normalize(ref, dim=1)
    n, m = x.shape[0], ref.shape[0]
    exclude_self = reference is None
    available = m - 1 if exclude_self else m
    if int(k) != k or k < 1 or k > available:
        raise ValueError(
            f"calibration.metrics.knn_proximity: k={k} needs 1 <= k <= {available} "
            f"(pool of {m} rows{', self excluded' if exclude_self else ''})"
        )
    k = int(k)
    if chunk_size is None:
        chunk_size = max(1, (1 << 24) // max(m, k * x.shape[1], 1))
    chunk_size = int(max(1, min(chunk_size, max(n, 1))))
    ref_sq = (ref * ref).sum(dim=1)
    out = torch.empty(n, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for s in range(0, n, chunk_size):
            e = min(n, s + chunk_size)
            q = x[s:e]
            d2 = torch.addmm(ref_sq.unsqueeze(0), q, ref.t(), beta=1.0, alpha=-2.0)
            d2.add_((q * q).sum(dim=1, keepdim=True))
            if exclude_self:
                rows = torch.arange(e - s, device=x.device)
                d2[rows, rows + s] = float("inf")
            nn_idx = torch.topk(d2, k, dim=1, largest=False, sorted=False).indices
            del d2
            diff = ref[nn_idx] - q.unsqueeze(1)  # (chunk, k, D)
            out[s:e] = diff.norm(dim=2).mean(dim=1)
    if as_numpy:
        return out.cpu().numpy()
    return out


# ----------------------------------------------------------------------------
# proper scores and classification metrics
# ----------------------------------------------------------------------------
def _reduce(values, reduction, fname):
    if reduction == "mean":
        return float(values.mean())
    if reduction == "sum":
        return float(values.sum())
    if reduction == "none":
        return values
    raise ValueError(f"calibration.metrics.{fname}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _scores_labels(scores, labels, fname):
    s = torch.as_tensor(_to_numpy(scores, np.float64))
    y = torch.as_tensor(_to_numpy(labels).astype(np.int64))
    if s.ndim != 2 or y.ndim != 1 or s.shape[0] != y.shape[0]:
        raise ValueError(
            f"calibration.metrics.{fname}: expected scores (N, C) and int labels (N,), "
            f"got {tuple(s.shape)} and {tuple(y.shape)}"
        )
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= s.shape[1]):
        raise ValueError(f"calibration.metrics.{fname}: labels must lie in [0, {s.shape[1]}), "
                         f"got range [{int(y.min())}, {int(y.max())}]")
    return s, y


def nll(scores, labels, from_logits=True, reduction="mean", eps=1e-12):
    """Negative log-likelihood of the true class (natural log, mean over samples).

    ``scores``: (N, C) logits (``from_logits=True``, log-softmax in float64) or
    probabilities (``from_logits=False``, clipped below at ``eps``); ``labels``:
    (N,) int. ``reduction``: ``mean`` (float), ``sum`` (float) or ``none``
    (numpy array of per-sample values).
    """
    s, y = _scores_labels(scores, labels, "nll")
    logp = torch.log_softmax(s, dim=1) if from_logits else torch.log(s.clamp_min(eps))
    values = -logp.gather(1, y.unsqueeze(1)).squeeze(1).numpy()
    return _reduce(values, reduction, "nll")


def brier(probs, labels, from_logits=False, reduction="mean"):
    """Multi-class Brier score: ``sum_k (p_k - 1[k = y])^2``, mean over samples (range [0, 2]).

    ``probs``: (N, C) probabilities (or logits with ``from_logits=True``);
    ``labels``: (N,) int. ``reduction`` as in ``nll``.
    """
    p, y = _scores_labels(probs, labels, "brier")
    if from_logits:
        p = torch.softmax(p, dim=1)
    values = ((p * p).sum(dim=1) - 2.0 * p.gather(1, y.unsqueeze(1)).squeeze(1) + 1.0).numpy()
    return _reduce(values, reduction, "brier")


def _preds(preds_or_scores):
    p = _to_numpy(preds_or_scores)
    if p.ndim == 2:
        return p.argmax(axis=1)
    if p.ndim != 1:
        raise ValueError(f"calibration.metrics: predictions must be (N,) ints or (N, C) scores, got {p.shape}")
    return p.astype(np.int64)


def accuracy(preds_or_scores, labels):
    """Top-1 accuracy (fraction). ``preds_or_scores``: (N,) predicted ints or (N, C) scores (argmax)."""
    p = _preds(preds_or_scores)
    y = _to_numpy(labels).astype(np.int64).reshape(-1)
    if p.shape != y.shape or y.size == 0:
        raise ValueError(f"calibration.metrics.accuracy: {p.shape[0]} predictions vs {y.shape[0]} labels")
    return float((p == y).mean())


def macro_f1(preds_or_scores, labels):
    """Macro-F1 (fraction) over the classes present in ``labels`` (Dassl's choice:
    ``f1_score(..., average='macro', labels=np.unique(y_true))``).
    Per class ``F1 = 2 TP / (2 TP + FP + FN)``."""
    p = _preds(preds_or_scores)
    y = _to_numpy(labels).astype(np.int64).reshape(-1)
    if p.shape != y.shape or y.size == 0:
        raise ValueError(f"calibration.metrics.macro_f1: {p.shape[0]} predictions vs {y.shape[0]} labels")
    n = int(max(p.max(), y.max())) + 1
    if min(p.min(), y.min()) < 0:
        raise ValueError("calibration.metrics.macro_f1: labels and predictions must be >= 0")
    tp = np.bincount(y[p == y], minlength=n)
    n_true = np.bincount(y, minlength=n)
    n_pred = np.bincount(p, minlength=n)
    present = n_true > 0
    f1 = 2.0 * tp[present] / (n_true[present] + n_pred[present])
    return float(f1.mean())


def confidences_from_probs(probs, labels, from_logits=False):
    """Top-label confidence and correctness of each row.

    ``probs``: (N, C) probabilities (or logits with ``from_logits=True``, then
    softmax in float64); ``labels``: (N,) int. Returns
    ``(confidence float64 (N,), correct bool (N,))`` as numpy arrays; the
    prediction is the argmax (first index on ties).
    """
    p = _to_numpy(probs, np.float64)
    if from_logits:
        p = torch.softmax(torch.as_tensor(p), dim=1).numpy()
    y = _to_numpy(labels).astype(np.int64).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(
            f"calibration.metrics.confidences_from_probs: expected (N, C) and (N,), got {p.shape} and {y.shape}"
        )
    pred = p.argmax(axis=1)
    conf = p[np.arange(p.shape[0]), pred]
    return conf, pred == y


def classification_stats(logits, labels):
    """Per-sample statistics of a batch of logits, for evaluators that accumulate.

    Returns a dict of numpy arrays (N,): ``confidence`` (max softmax, float64),
    ``pred`` (argmax), ``nll`` (-log softmax of the label) and ``brier``.
    Softmax is taken in float64.
    """
    s, y = _scores_labels(logits, labels, "classification_stats")
    logp = torch.log_softmax(s, dim=1)
    p = logp.exp()
    conf, pred = p.max(dim=1)
    py = p.gather(1, y.unsqueeze(1)).squeeze(1)
    return {
        "confidence": conf.numpy(),
        "pred": pred.numpy(),
        "nll": -logp.gather(1, y.unsqueeze(1)).squeeze(1).numpy(),
        "brier": ((p * p).sum(dim=1) - 2.0 * py + 1.0).numpy(),
    }


def classification_metrics(confidence, pred, labels, nll_values=None, brier_values=None,
                           proximity=None, n_bins=10):
    """All single-label metrics as an OrderedDict of fractions, in the evaluator's order.

    Keys: ``accuracy``, ``error_rate``, ``macro_f1``, ``ece``, ``mce`` (weighted),
    ``adaptive_ece``, ``piece`` (only when ``proximity`` is given), ``mce_max``
    (textbook MCE), ``nll`` and ``brier`` (means of the per-sample values, only
    when given).
    """
    conf = _to_numpy(confidence, np.float64).reshape(-1)
    p = _to_numpy(pred).astype(np.int64).reshape(-1)
    y = _to_numpy(labels).astype(np.int64).reshape(-1)
    correct = p == y
    out = OrderedDict()
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
