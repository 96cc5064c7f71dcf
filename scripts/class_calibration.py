"""Signed per-class calibration of multi-label base-to-new runs (the CCR paper's Figure 2 view).

The gap of class c is the mean top-label confidence ``max(p, 1 - p)`` minus the accuracy of its
(image, c) pairs over the evaluated split (``calibration.multilabel.signed_class_calibration``;
> 0 over-confident), from the run's ``outputs_<split>.npz`` (``TEST.SAVE_OUTPUTS True``; p =
sigmoid(saved logits)). Base runs give the gaps of the base head / medium / tail groups and of all
base classes, new runs that of the new classes; beside them mAP, ECE, ACE, MCE and PIECE of the
runs' ``results.json``. Percent, mean ± sample std over the seeds found. Groups: head (>= 100
training images), medium (20-99), tail (< 20) among the base classes, counted on the full training
split (``datasets.common.lt_groups_of_counts``): from ``--counts`` (a split file with
``train_counts``, ``ShapeWorldRender``'s), else recomputed from the rendered world's generator.

    python scripts/class_calibration.py OUTPUT_ROOT [--dataset shapeworld_render] [--shots 16]
        [--split test] [--counts SPLIT_JSON]
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cpt.calibration.multilabel import signed_class_calibration
from cpt.cli.results.runs import collect_runs
from cpt.datasets.common import lt_groups_of_counts
from score_diagnostics import load_outputs as load_scores

METRICS = (("mAP", "mAP"), ("ECE", "ece"), ("ACE", "adaptive_ece"), ("MCE", "mce"), ("PIECE", "piece"))


def world_train_counts(seed=0, n_train=1200):
    """Positives per class of ShapeWorldRender's training split (label draws only, no images)."""
    from cpt.datasets import world
    w = world.long_tail_weights()
    counts = np.zeros(world.N_CLASSES, dtype=np.int64)
    for i in range(n_train):
        counts[world.sample_scene_labels(world.rng_for(seed, "scene_train_lt", i), 2, 4, weights=w)] += 1
    return counts


def load_outputs(run_dir, split):
    """``(probs, targets)`` of one run's saved outputs; a clear error when the file is missing."""
    logits, labels = load_scores(run_dir, split)
    return 1.0 / (1.0 + np.exp(-logits)), labels


def _fmt(vals):
    vals = [v for v in vals if v is not None and np.isfinite(v)]
    if len(vals) < 2:
        return f"{vals[0]:.2f}" if vals else "-"
    return f"{np.mean(vals):.2f} ± {np.std(vals, ddof=1):.2f}"


def _table(rows, cols):
    print("| method | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for m, row in rows.items():
        print(f"| {m} | " + " | ".join(_fmt(row.get(c, [])) for c in cols) + " |")


def collect(root, dataset, shots, split, counts):
    """Rows ``{method: {column: [value per seed]}}`` for every (trainer, config, calibration) found."""
    n_base = (len(counts) + 1) // 2
    groups = lt_groups_of_counts(counts, list(range(n_base)))
    rows = {}
    for run in collect_runs(root):
        if run.dataset != dataset or run.shots != shots:
            continue
        if not run.finished:
            print(f"skipped ({run.status}): {run.path}", file=sys.stderr)
            continue
        calib = "" if run.calibration == "none" else f"_{run.calibration}"
        row = rows.setdefault(f"{run.trainer}/{run.config}{calib}", {})
        p, y = load_outputs(run.path, split)
        if run.side == "base":
            _, g = signed_class_calibration(p, y, groups=dict(groups, all=list(range(p.shape[1]))))
            for name in ("head", "medium", "tail", "all"):
                row.setdefault(f"base {name}", []).append(100 * g[name])
        else:
            gaps, _ = signed_class_calibration(p, y)
            row.setdefault("new", []).append(100 * float(np.nanmean(gaps)))
        for label, key in METRICS:
            row.setdefault(f"{label} {run.side}", []).append(run.metrics.get(key))
    return rows, groups


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--dataset", default="shapeworld_render")
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--split", default="test")
    ap.add_argument("--counts", default="", help="split JSON with train_counts (default: regenerate)")
    args = ap.parse_args(argv)
    if args.counts:
        with open(args.counts) as f:
            data = json.load(f)
        if "train_counts" not in data:
            raise KeyError(f"{args.counts}: no 'train_counts' list (expected a ShapeWorldRender split file)")
        counts = np.asarray(data["train_counts"])
    else:
        counts = world_train_counts()
    rows, groups = collect(args.root, args.dataset, args.shots, args.split, counts)
    if not rows:
        raise SystemExit(f"no runs under {args.root}/base2new/train_base/{args.dataset}/shots_{args.shots}")
    sizes = ", ".join(f"{k} {len(v)}" for k, v in groups.items())
    print(f"Signed calibration gap (mean confidence - accuracy per class, %, mean over the group's "
          f"classes; base groups: {sizes})\n")
    _table(rows, ["base head", "base medium", "base tail", "base all", "new"])
    print()
    _table(rows, [f"{label} {side}" for label, _ in METRICS for side in ("base", "new")])


if __name__ == "__main__":
    main()
