"""Summarise base-to-new runs into the papers' tables.

Usage: ``python scripts/parse_results.py OUTPUT_ROOT [options]`` (``-h`` lists them). It reads
``OUTPUT_ROOT/base2new/{train_base,test_new}/<dataset>/shots_<K>/<trainer>/<cfgdir>/seed<S>/``
(``cpt.cli.catalog``'s layout; ``<cfg>/<calib>`` two levels deep too): metadata and metrics (percent)
from ``results.json`` (path components are a fallback), else the last ``=> result`` block of
``log.txt``. Base metrics come from ``train_base``, new ones from ``test_new``.

Per dataset: the mean over finished seeds and the *sample* std (ddof=1; empty with one seed);
``hm`` is the harmonic mean of the mean base and new primary metric (accuracy; mAP for
``--multilabel``, chosen when every finished run reports ``mAP``). The ``average`` row is the
plain mean over datasets of each column, its ``hm`` that of the averaged base and new values.
Seeds that ran different configurations (the ``fingerprint`` in results.json; runs without one
count as one "unknown") never share a row: such a dataset gets one row per configuration, labelled
by the config keys that differ (a note names them with their values) and left out of the average.
Missing, failed and unfinished runs are listed, never averaged in; the expected seeds and
datasets are the union seen within each (trainer, config, calibration, shots) group unless
``--seeds`` / ``--datasets`` say otherwise. ``--dg``: one row per group of
``OUTPUT_ROOT/dg/{train,test}`` runs, per dataset the mean (and std) over seeds of each metric.

The program of ``scripts/parse_results.py``; the stages are its sibling modules (runs -> summary ->
paper -> formats). ``CPT_PLUGINS`` is loaded first, so a plugin's method is named in the paper
comparison.
"""
import argparse
import os
import sys

from ..catalog import DATASETS, LAYOUTS  # noqa: F401  (DATASETS handed on: the 11 benchmarks)
from ..plugins import load_plugins
from .formats import METRIC_LABEL, format_csv, format_dg, format_long, format_problems, format_wide, summary_rows
from .paper import PAPER_TABLE, load_paper_table, paper_names, paper_notes  # noqa: F401  (paper_names handed on)
from .runs import collect, collect_runs, split_cfg_dir  # noqa: F401  (the readers handed on)
from .summary import GROUP_METRICS, METRIC_KEYS, config_conflicts, summarize, summarize_dg

ML_METRICS = ["map", "cf1", "of1", "ece", "ece_head", "ece_medium", "ece_tail"]
DG_METRICS = ["map", "ece", "ece_head", "ece_medium", "ece_tail"]


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output_root", help="the OUTPUT directory of the scripts (holding base2new/)")
    p.add_argument("--format", choices=["md", "csv", "latex"], default="md")
    p.add_argument("--layout", choices=["long", "wide"], default="long",
                   help="long: one row per dataset (default); wide: datasets as columns (TCPT tables), md/latex")
    p.add_argument("--metrics", nargs="+", default=None,
                   help="acc ece mce ace piece (multi-label: map cf1 of1 ece ece_head ...), or any results.json "
                        "metric key (default: acc ece; multi-label: map cf1 of1 ece + head/medium/tail ECE)")
    p.add_argument("--multilabel", action="store_true",
                   help="multi-label table: mAP (HM of mAP), CF1, OF1, ECE on base/new and head/medium/tail ECE "
                        "(automatic when every finished run reports mAP)")
    p.add_argument("--dg", action="store_true",
                   help="domain-generalisation table of OUTPUT_ROOT/dg/{train,test} instead of base-to-new")
    p.add_argument("--compare-paper", action="store_true", help="print the TCPT paper's numbers beside ours")
    p.add_argument("--paper-table", default=PAPER_TABLE)
    p.add_argument("--plot", metavar="PATH", help="save a summary figure (base/new acc and ECE per group)")
    p.add_argument("--trainer", nargs="+", help="keep only these trainers")
    p.add_argument("--config", nargs="+", help="keep only these method configs")
    p.add_argument("--calibration", nargs="+", help="keep only these calibration names")
    p.add_argument("--shots", type=int, help="keep only this number of shots")
    p.add_argument("--datasets", nargs="+", help="expected datasets (others are dropped)")
    p.add_argument("--seeds", nargs="+", type=int, help="expected seeds (others are dropped)")
    p.add_argument("--no-std", action="store_true", help="no std in md/latex cells and no _std csv columns")
    p.add_argument("--strict", action="store_true",
                   help="exit 2 when a run is missing or failed, or when one row's seeds ran different configurations")
    return p


def discover(args, layout):
    """The runs of ``OUTPUT_ROOT/<layout>`` that pass the filters; None (after an error) when none."""
    top = os.path.join(args.output_root, layout)
    splits = "{" + ",".join(LAYOUTS[layout]) + "}"
    if not os.path.isdir(top):
        print(f"error: {top} does not exist; expected OUTPUT_ROOT/{layout}/{splits}/<dataset>/shots_<K>/"
              "<trainer>/<cfg>/seed<S>/results.json (the layout of scripts/common.sh)", file=sys.stderr)
        return None
    runs = collect(args.output_root, layout)
    keep = {"trainer": args.trainer, "config": args.config, "calibration": args.calibration,
            "dataset": args.datasets, "shots": None if args.shots is None else [args.shots]}
    runs = [r for r in runs if all(v is None or getattr(r, k) in v for k, v in keep.items())]
    if not runs:
        print(f"error: no runs (seed<S> directories) under {top} match the filters", file=sys.stderr)
        return None
    return runs


def metric_list(names, runs=None):
    """Lower-cased known names, de-duplicated; with ``runs``, head/medium/tail columns only when
    some finished run reports them."""
    out = []
    for m in names:
        m = m.lower() if m.lower() in METRIC_KEYS or m.lower() in METRIC_LABEL else m
        if m not in out:
            out.append(m)
    if runs is not None:
        have = {k for r in runs if r.finished for k in r.metrics}
        out = [m for m in out if m not in GROUP_METRICS or METRIC_KEYS.get(m, m) in have]
    return out


def write(text, problems, notes, args, groups=None):
    """Print the table, then the problems and notes; the exit status (``--strict``: 2 on a problem,
    or on a row split by configuration, each named on stderr)."""
    sys.stdout.write(text)
    extra = format_problems(problems, notes, args.format)
    if extra:  # csv: keep stdout machine-readable, problems go to stderr
        (sys.stderr if args.format == "csv" else sys.stdout).write(("" if args.format == "csv" else "\n") + extra)
    conflicts = config_conflicts(groups or {}) if args.strict else []
    for line in conflicts:
        print(f"error: --strict: {line}; keep one configuration per OUTPUT (or pick its seeds with --seeds)",
              file=sys.stderr)
    return 2 if args.strict and (problems or conflicts) else 0


def main_dg(args):
    runs = discover(args, "dg")
    if runs is None:
        return 1
    groups, columns, problems = summarize_dg(runs, metric_list(args.metrics or DG_METRICS, runs), seeds=args.seeds)
    return write(format_dg(groups, columns, fmt=args.format, std=not args.no_std), problems, config_conflicts(groups),
                 args, groups)


def main(argv=None):
    args = build_parser().parse_args(argv)
    load_plugins()
    if args.dg:
        return main_dg(args)
    runs = discover(args, "base2new")
    if runs is None:
        return 1
    finished = [r for r in runs if r.finished]
    multilabel = args.multilabel or (bool(finished) and all("mAP" in r.metrics for r in finished))
    primary = "map" if multilabel else "acc"
    metrics = metric_list(args.metrics or (ML_METRICS if multilabel else ["acc", "ece"]), runs if multilabel else None)
    metrics.sort(key=lambda m: m != primary)  # the primary metric first (a stable sort keeps the rest)
    groups, problems, notes = summarize(runs, metrics, datasets=args.datasets, seeds=args.seeds, primary=primary)
    paper = None
    if args.compare_paper:
        paper = load_paper_table(args.paper_table)
        notes += paper_notes(groups)
    std = not args.no_std
    if args.format == "csv":
        text = format_csv(groups, metrics, std=std, paper=paper, primary=primary)
    elif args.layout == "wide":
        text = format_wide(groups, metrics, fmt=args.format, paper=paper, primary=primary)
    else:
        text = format_long(groups, metrics, fmt=args.format, std=std, paper=paper, primary=primary)
    rc = write(text, problems, notes, args, groups)
    if args.plot:
        from ...calibration.plots import save_summary_figure  # lazy: needs matplotlib
        save_summary_figure(summary_rows(groups), args.plot)
        print(f"summary figure saved to {args.plot}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
