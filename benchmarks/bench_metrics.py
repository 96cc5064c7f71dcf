"""Time calibration.metrics against straightforward per-sample loops, in one run.

    python benchmarks/bench_metrics.py [--sizes 200000 3200000] [--loop-max 400000]

For each size N and each of ece / mce / adaptive_ece / piece, the vectorised function (best of
--repeats, after a warm-up) is timed against a per-bin loop (best of --loop-repeats) with the
structure of the TCPT evaluator's ECE helper: for every bin (PIECE: every proximity bin, then every
confidence bin inside it) a Python pass over the samples keeps those in the bin, whose accuracy and
mean confidence are then summed up (equal-mass edges from np.quantile). Loops run on at most
--loop-max samples, their time scaled linearly to N (the output says so); both sides must agree to
1e-9 on the samples the loops saw. Single-threaded; a ratio is loop time / vectorised time.
"""
import argparse
import sys

import numpy as np

from benchlib import best_time
from cpt.calibration import metrics as M


# --- per-bin loops (the TCPT evaluator's structure), over numpy arrays ------
def _bin_gap(members, n):
    if not members:
        return 0.0
    acc = sum(a for _, a in members) / len(members)
    avg = sum(c for c, _ in members) / len(members)
    return abs(acc - avg) * len(members) / n


def _right_bins(edges):
    """[lo, hi) bins of ``edges``, the first open below, the last closed (and open above)."""
    nb = len(edges) - 1
    return [(edges[b] if b > 0 else -np.inf, edges[b + 1] if b < nb - 1 else np.inf) for b in range(nb)]


def loop_quantile_edges(values, n_bins):
    """np.quantile edges with zero-width bins merged (the metrics' equal-mass rule)."""
    raw = np.quantile(np.asarray(values), np.linspace(0, 1, n_bins + 1)).tolist()
    if raw[0] == raw[-1]:
        return [raw[0], raw[-1]]
    return [raw[0]] + [raw[i] for i in range(1, len(raw)) if raw[i] - raw[i - 1] > 1e-8]


def perbin_ece(conf, correct, n_bins=10):
    edges = np.linspace(0, 1, n_bins + 1)
    n = len(conf)
    return sum(_bin_gap([(c, a) for c, a in zip(conf, correct) if c > lo and c <= hi], n)
               for lo, hi in zip(edges[:-1], edges[1:]))


def perbin_mce(conf, correct, n_bins=10):
    n = len(conf)
    gaps = []
    for lo, hi in _right_bins(np.linspace(0, 1, n_bins + 1)):
        members = [(c, a) for c, a in zip(conf, correct) if c >= lo and c < hi]
        if members:
            gaps.append(_bin_gap(members, n))
    return max(gaps)


def perbin_ace(conf, correct, n_bins=10):
    n = len(conf)
    return sum(_bin_gap([(c, a) for c, a in zip(conf, correct) if c >= lo and c < hi], n)
               for lo, hi in _right_bins(loop_quantile_edges(conf, n_bins)))


def perbin_piece(conf, correct, prox, n_bins=10, n_prox_bins=10):
    n = len(conf)
    total = 0.0
    for plo, phi in _right_bins(loop_quantile_edges(prox, n_prox_bins)):
        inside = [(c, a) for c, a, p in zip(conf, correct, prox) if p >= plo and p < phi]
        for lo, hi in _right_bins(np.linspace(0, 1, n_bins + 1)):
            total += _bin_gap([(c, a) for c, a in inside if c >= lo and c < hi], n)
    return total


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    conf = rng.beta(5.0, 1.5, size=n)  # skewed towards 1, like a trained classifier
    conf[rng.choice(n, n // 1000, replace=False)] = 1.0
    conf[rng.choice(n, n // 5000, replace=False)] = 0.0
    correct = rng.random(n) < conf ** 1.2
    prox = rng.gamma(2.0, 0.3, size=n)
    return conf, correct, prox


# (metric, vectorised function, per-bin loop, number of arguments: conf, correct[, prox])
CASES = [("ece", M.ece, perbin_ece, 2), ("mce", M.mce, perbin_mce, 2),
         ("adaptive_ece", M.adaptive_ece, perbin_ace, 2), ("piece", M.piece, perbin_piece, 3)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 3_200_000])
    ap.add_argument("--loop-max", type=int, default=400_000,
                    help="largest number of samples a loop version runs on (then scaled linearly)")
    ap.add_argument("--repeats", type=int, default=5, help="vectorised runs per case (best is kept)")
    ap.add_argument("--loop-repeats", type=int, default=2, help="loop runs per case (best is kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-ratio", type=float, default=100.0)
    args = ap.parse_args(argv)

    print(f"numpy {np.__version__}, CPython {sys.version.split()[0]}; single-threaded")
    header = f"{'metric':<13}{'N':>10}{'vectorised':>12}   {'per-bin loop':>12}{'ratio':>8}   loop timed on"
    print(header)
    print("-" * len(header))
    ratios = []
    for n in args.sizes:
        conf, correct, prox = make_data(n, args.seed)
        m = min(n, args.loop_max)
        arr = (conf[:m], correct[:m].astype(float), prox[:m])
        for name, vec, loop, n_args in CASES:
            full = (conf, correct, prox)[:n_args]
            t_vec = best_time(lambda: vec(*full), args.repeats, warmup=True)[0]
            expect = vec(*(a[:m] for a in full))
            best, value = best_time(lambda: loop(*arr[:n_args]), args.loop_repeats)
            if abs(value - expect) > 1e-9:
                print(f"MISMATCH {name}: loop {value!r} vs vectorised {expect!r}")
                return 2
            t_loop = best * n / m
            ratios.append(t_loop / t_vec)
            how = "all samples" if m == n else f"{m:,} (x{n / m:g} scaled)"
            print(f"{name:<13}{n:>10,}{t_vec * 1e3:>9.1f} ms   {t_loop:>10.2f} s{ratios[-1]:>7.0f}x   {how}")
    worst = min(ratios)
    ok = worst >= args.min_ratio
    print(f"\nsmallest ratio vs the per-bin loops: {worst:.0f}x "
          f"({'>=' if ok else '<'} {args.min_ratio:g}x): {'PASS' if ok else 'FAIL'}")
    print("loop and vectorised values agree to 1e-9 on every sample the loops saw")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
