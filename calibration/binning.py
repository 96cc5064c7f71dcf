"""Exact, fast binning for the calibration metrics (``calibration.metrics`` states the bin rules).

A value's bin is the number of edges below it: ``edge < x`` for ``(lo, hi]`` bins (``strict``),
``edge <= x`` for ``[lo, hi)`` bins, decided by exact float64 comparisons. Comparing every
sample with every edge (or ``np.searchsorted``) costs several passes, so the samples are first
put in the cells of a uniform grid, ``cell = floor((x - lo) * scale)`` (``_G + 1`` cells), in
cache-sized blocks, and ``np.bincount`` sums counts and weights per cell. The map is monotone,
so a cell other than an edge's own cell (the same float operations applied to the edge) lies
wholly on one side of that edge; only the samples of the few cells holding an edge are compared
one by one. Equal-mass edges (``np.quantile``'s linear rule, bit for bit) reuse the grid's
histogram to find the cells holding the order statistics they need and sort only those samples.
Plain ``searchsorted`` + ``bincount`` measured 4-30x slower (benchmarks/bench_metrics.py).
"""
from __future__ import annotations

import numpy as np

_BLOCK = 1 << 16  # samples per pass block
_G = 1 << 12  # grid cells - 1
_SELECT_MIN_N = 1 << 16  # below this, np.quantile is called directly
_CELL = np.int16 if _G < np.iinfo(np.int16).max else np.intp  # stored cells: a quarter of the memory traffic
MIN_BIN_WIDTH = 1e-8  # equal-mass edges closer than this to the previous one are dropped


class Grid:
    """Uniform grid over the values ``x`` (1-D float64): the unit interval when ``unit_ok`` and
    0 <= x <= 1 (cells of width 1/_G), else [min(x), max(x)]. Non-finite values raise."""

    def __init__(self, x: np.ndarray, unit_ok: bool = True) -> None:
        self.x, self.mn, self.mx = x, x.min(), x.max()
        if not (np.isfinite(self.mn) and np.isfinite(self.mx)):
            raise ValueError("contains NaN or infinite values")
        if unit_ok and self.mn >= 0.0 and self.mx <= 1.0:
            self.lo, self.scale = np.float64(0.0), np.float64(_G)
        else:
            span = self.mx - self.mn
            scale = np.float64(_G) / span if span > 0 else np.float64(0.0)
            self.lo, self.scale = self.mn, scale if np.isfinite(scale) else np.float64(0.0)

    def values(self, v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(v - lo) * scale``: the same float operations for samples and edges."""
        out = np.subtract(v, self.lo, out=out)
        return np.multiply(out, self.scale, out=out)

    def table(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per cell: the number of ``edges`` below every sample of the cell (int64), and the
        mask of the cells that hold an edge (their samples are binned one by one)."""
        cells = np.floor(self.values(np.asarray(edges, dtype=np.float64)))
        held = np.zeros(_G + 1, dtype=bool)
        inside = (cells >= 0) & (cells <= _G)
        held[cells[inside].astype(np.intp)] = True
        return np.searchsorted(np.sort(cells), np.arange(_G + 1), side="left"), held

    def accumulate(
            self, a: np.ndarray | None = None, c: np.ndarray | None = None, counts: bool = True, keep: bool = False,
            flagged: np.ndarray | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray]:
        """One blocked pass. Returns per-cell counts (when ``counts``), per-cell sums of ``a - c``
        (when ``a`` is given), every sample's cell (when ``keep``), the indices of the samples in
        ``flagged`` cells."""
        x, n = self.x, self.x.shape[0]
        buf, cb = np.empty(min(n, _BLOCK)), np.empty(min(n, _BLOCK), dtype=np.intp)
        cells = np.empty(n, dtype=_CELL) if keep else None
        cnt = np.zeros(_G + 1, dtype=np.int64) if counts else None
        dsum, hits = np.zeros(_G + 1) if a is not None else None, []
        for s in range(0, n, _BLOCK):
            e = min(n, s + _BLOCK)
            v, g = self.values(x[s:e], out=buf[:e - s]), cb[:e - s]
            np.copyto(g, v, casting="unsafe")  # floor of a non-negative value
            if keep:
                cells[s:e] = g
            if counts:
                cnt += np.bincount(g, minlength=_G + 1)
            if a is not None:
                dsum += np.bincount(g, weights=np.subtract(a[s:e], c[s:e], out=v), minlength=_G + 1)
            if flagged is not None:
                hits.append(np.flatnonzero(np.take(flagged, g, mode="clip")) + s)
        return cnt, dsum, cells, np.concatenate(hits) if hits else np.empty(0, dtype=np.intp)


def exact_bins(x: np.ndarray, edges: np.ndarray, strict: bool) -> np.ndarray:
    """``#(edges < x)`` (strict) or ``#(edges <= x)`` by direct comparison."""
    return np.searchsorted(edges, x, side="left" if strict else "right")


def binned_gaps(grid: Grid, edges: np.ndarray, strict: bool, a: np.ndarray, c: np.ndarray,
                counts: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-bin sums of ``a - c`` (and counts) for the ``len(edges) + 1`` bins of ``grid.x``."""
    nb = len(edges) + 1
    table, held = grid.table(edges)
    cnt, dsum, _, idx = grid.accumulate(a, c, counts=counts, flagged=held)
    return _fold(grid.x, edges, strict, table, held, cnt, dsum, idx, a, c, nb, counts)


def _fold(x, edges, strict, table, held, cnt, dsum, idx, a, c, nb, counts):
    """Per-cell sums -> per-bin sums; the samples ``idx`` of the cells in ``held`` are binned exactly."""
    ok = ~held
    gap = np.bincount(table[ok], weights=dsum[ok], minlength=nb).astype(np.float64, copy=False)
    n_b = np.bincount(table[ok], weights=cnt[ok], minlength=nb).astype(np.int64) if counts else None
    if idx.size:
        b = exact_bins(x[idx], edges, strict)
        gap += np.bincount(b, weights=np.subtract(a[idx], c[idx]), minlength=nb)
        if counts:
            n_b += np.bincount(b, minlength=nb)
    return gap, n_b


def bin_index(grid: Grid, edges: np.ndarray, strict: bool) -> np.ndarray:
    """The bin of every sample of ``grid.x``."""
    table, held = grid.table(edges)
    cells = grid.accumulate(counts=False, keep=True)[2]
    bins = table[cells]
    idx = np.flatnonzero(held[cells])
    bins[idx] = exact_bins(grid.x[idx], edges, strict)
    return bins


def quantile_edges(x: np.ndarray, n_bins: int, cnt: np.ndarray | None = None,
                   cells: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.quantile(x, linspace(0, 1, n_bins + 1))`` (linear) from the grid histogram ``cnt`` and
    every sample's cell (computed here when not given): only the samples of the cells holding the
    needed order statistics are sorted. Returns ``(edges, those samples' indices, cell mask)``."""
    n = x.shape[0]
    q = np.linspace(0.0, 1.0, n_bins + 1)
    need = np.zeros(_G + 1, dtype=bool)
    if n < _SELECT_MIN_N:
        return np.quantile(x, q), np.empty(0, dtype=np.intp), need
    if cnt is None:
        cnt, _, cells, _ = Grid(x, unit_ok=False).accumulate(keep=True)
    vi = (n - 1) * q  # numpy's linear rule: neighbours floor(vi) and floor(vi) + 1, clipped
    prev = np.minimum(np.floor(vi), n - 1).astype(np.intp)
    nxt = np.minimum(prev + 1, n - 1)
    gamma = np.where(vi >= n - 1, 0.0, vi - prev)
    ranks = np.unique(np.concatenate([prev, nxt]))
    cum = np.cumsum(cnt)
    cell_of = np.searchsorted(cum, ranks, side="right")
    need[cell_of] = True
    cand = np.flatnonzero(need[cells])
    taken = np.where(need, cnt, 0)
    stats = np.sort(x[cand])[(np.cumsum(taken) - taken)[cell_of] + ranks - (cum[cell_of] - cnt[cell_of])]
    lo, hi = stats[np.searchsorted(ranks, prev)], stats[np.searchsorted(ranks, nxt)]
    diff = hi - lo  # numpy's two-sided interpolation (exact at both ends)
    return np.where(gamma >= 0.5, hi - diff * (1 - gamma), lo + diff * gamma), cand, need


class EqualMass:
    """Equal-mass bins of ``x`` (quantile edges, zero-width bins merged, ``[lo, hi)`` with the last
    closed) and the grid pass that found them (with the per-cell sums of ``a - c`` when given)."""

    def __init__(self, x: np.ndarray, n_bins: int, a: np.ndarray | None = None, c: np.ndarray | None = None) -> None:
        self.grid = Grid(x, unit_ok=False)
        self.cnt, self.dsum, self.cells, _ = self.grid.accumulate(a, c, keep=True)
        self.edges, self.cand, self.need = None, np.empty(0, dtype=np.intp), np.zeros(_G + 1, dtype=bool)
        if self.grid.mn != self.grid.mx:  # else one bin
            raw, self.cand, self.need = quantile_edges(x, n_bins, self.cnt, self.cells)
            self.edges = raw[np.ediff1d(raw, to_begin=np.inf) > MIN_BIN_WIDTH]
        self.inner = np.empty(0) if self.edges is None else self.edges[1:-1]
        self.table, self.held = self.grid.table(self.inner)

    def held_samples(self) -> np.ndarray:
        """Indices of the samples in cells holding an edge (mostly the quantile step's samples)."""
        if self.cand.size and not (self.held & ~self.need).any():
            return self.cand[self.held[self.cells[self.cand]]]
        return np.flatnonzero(self.held[self.cells])

    def gap_sums(self, a: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Per-bin sums of ``a - c`` (the pass must have had ``a`` and ``c``)."""
        return _fold(self.grid.x, self.inner, False, self.table, self.held, self.cnt, self.dsum,
                     self.held_samples(), a, c, len(self.inner) + 1, False)[0]

    def bin_index(self) -> np.ndarray:
        bins = self.table[self.cells]
        idx = self.held_samples()
        bins[idx] = exact_bins(self.grid.x[idx], self.inner, False)
        return bins


def cell_gaps(em: EqualMass, cgrid: Grid, a: np.ndarray, n_bins: int) -> np.ndarray:
    """Sums of ``a - c`` per (bin of ``em``, confidence bin) cell, ``c = cgrid.x``, the confidence
    bins equal-width ``[lo, hi)`` with the last closed, in one blocked pass over ``em``'s cells."""
    c, c_inner, p, n_p = cgrid.x, np.linspace(0.0, 1.0, n_bins + 1)[1:-1], em.grid.x, len(em.inner) + 1
    flag = -(1 << 40)  # a cell holding an edge: a negative key, resolved exactly
    ptab, (ctab, cheld) = np.where(em.held, flag, em.table * n_bins), cgrid.table(c_inner)
    ctab[cheld] = flag
    n = c.shape[0]
    buf, key, cb = np.empty(min(n, _BLOCK)), np.empty(min(n, _BLOCK), dtype=np.intp), \
        np.empty(min(n, _BLOCK), dtype=np.intp)
    gap = np.zeros(n_p * n_bins)
    for s in range(0, n, _BLOCK):
        e = min(n, s + _BLOCK)
        k, g = key[:e - s], cb[:e - s]
        np.take(ptab, em.cells[s:e], out=k, mode="clip")  # (mode="raise" would buffer a copy)
        np.copyto(g, cgrid.values(c[s:e], out=buf[:e - s]), casting="unsafe")
        np.add(k, np.take(ctab, g, out=g, mode="clip"), out=k)
        bad = np.flatnonzero(k < 0)
        if bad.size:
            i = bad + s
            k[bad] = exact_bins(p[i], em.inner, False) * n_bins + exact_bins(c[i], c_inner, False)
        gap += np.bincount(k, weights=np.subtract(a[s:e], c[s:e], out=buf[:e - s]), minlength=n_p * n_bins)
    return gap
