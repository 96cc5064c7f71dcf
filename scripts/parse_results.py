#!/usr/bin/env python
"""Summarise base-to-new runs into the papers' tables.

Usage::

    python scripts/parse_results.py OUTPUT_ROOT [--format md|csv|latex] [--layout long|wide]
        [--metrics acc ece mce ace piece] [--compare-paper] [--plot PATH]
        [--trainer T ...] [--config C ...] [--calibration K ...] [--shots K]
        [--datasets D ...] [--seeds S ...] [--no-std] [--strict]
        [--multilabel] [--dg]

Layout read (DESIGN.md section 7, the calibrator in the path)::

    OUTPUT_ROOT/base2new/train_base/<dataset>/shots_<K>/<trainer>/<cfgdir>/seed<S>/results.json
    OUTPUT_ROOT/base2new/test_new/<dataset>/shots_<K>/<trainer>/<cfgdir>/seed<S>/results.json

``<cfgdir>`` is ``<cfg>`` when the calibration is ``none`` and ``<cfg>_<calib>`` otherwise
(``<cfg>/<calib>`` two levels deep is read as well). Metadata (trainer, config, calibration,
dataset, seed, shots, subsample, status) comes from ``results.json``; path components are only
a fallback. Without ``results.json`` the run's ``log.txt`` is read (the last Dassl
``=> result`` block, lines ``* key: X%``); such a run counts as finished when it holds a result
block. Base metrics come from the base runs (``train_base``), new metrics from the new runs
(``test_new``).

Conventions: metrics are percent as the runs write them. Per dataset the mean over finished seeds
and the *sample* standard deviation (ddof=1, as the papers' "+-" over 3 seeds; empty with one
seed). ``hm`` is the harmonic mean of the row's mean base and mean new accuracy (CoCoOp's H).
The ``average`` row is the plain mean over datasets of each column (stds left empty) and its
``hm`` is the harmonic mean of the averaged base and new accuracy. Missing, failed and
unfinished runs are listed under the table and never averaged in; expected seeds and datasets
are the union seen within each (trainer, config, calibration, shots) group unless ``--seeds`` /
``--datasets`` say otherwise.

Multi-label runs (``--multilabel``; chosen automatically when every finished run reports ``mAP``
and no ``--metrics`` are given): the primary metric is mAP instead of accuracy, ``hm`` is the
harmonic mean of the mean base and new mAP, and the default columns are mAP, CF1, OF1 and ECE on
base and new, plus the head/medium/tail ECE (``ece_head``, ``ece_medium``, ``ece_tail``, as the
multi-label evaluator reports them for long-tailed datasets) when some run has them.

Domain generalisation (``--dg``): runs under ``OUTPUT_ROOT/dg/train/<source>/...`` (trained and
evaluated on the source) and ``OUTPUT_ROOT/dg/test/<target>/...`` (the same prompts evaluated on a
target; layout of ``scripts/multilabel/common_ml.sh``) give one table with a row per (trainer,
config, calibration, shots) and, per dataset, the mean (and std) over seeds of each metric
(default: mAP, ECE and the head/medium/tail ECE where present).

Only the standard library is needed (``--plot`` imports ``calibration.plots`` and matplotlib).
"""
import argparse
import csv
import io
import json
import math
import os
import re
import statistics
import sys

SCRIPTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(SCRIPTS_DIR)
PAPER_DIR = os.path.join(SCRIPTS_DIR, "paper_tables")

SPLIT_DIRS = {"train_base": "base", "test_new": "new"}
DG_DIRS = {"train": "source", "test": "target"}

# The 11 base-to-new benchmarks in the papers' column order: yaml stem -> (paper column, display name)
DATASETS = [
    ("imagenet", "INet", "ImageNet"),
    ("caltech101", "Cal", "Caltech101"),
    ("oxford_pets", "Pets", "OxfordPets"),
    ("stanford_cars", "Cars", "StanfordCars"),
    ("oxford_flowers", "Flow", "Flowers102"),
    ("food101", "Food", "Food101"),
    ("fgvc_aircraft", "Air", "FGVCAircraft"),
    ("sun397", "SUN", "SUN397"),
    ("dtd", "DTD", "DTD"),
    ("eurosat", "Euro", "EuroSAT"),
    ("ucf101", "UCF", "UCF101"),
]
PAPER_COLUMN = {stem: col for stem, col, _ in DATASETS}
PAPER_COLUMN["average"] = "Avg"
DISPLAY_NAME = {stem: name for stem, _, name in DATASETS}
DISPLAY_NAME["average"] = "Average"
DATASET_ORDER = {stem: i for i, (stem, _, _) in enumerate(DATASETS)}

# Short metric names (columns) -> results.json metric keys.
METRIC_KEYS = {"acc": "accuracy", "ece": "ece", "mce": "mce", "ace": "adaptive_ece", "piece": "piece",
               "map": "mAP", "cf1": "cf1", "of1": "of1"}
METRIC_LABEL = {"acc": "Acc", "ece": "ECE", "mce": "MCE", "ace": "ACE", "piece": "PIECE", "map": "mAP",
                "cf1": "CF1", "of1": "OF1", "ece_head": "ECE head", "ece_medium": "ECE medium",
                "ece_tail": "ECE tail", "ece_positive": "ECE+", "classwise_ece": "cwECE"}
ML_METRICS = ["map", "cf1", "of1", "ece", "ece_head", "ece_medium", "ece_tail"]
DG_METRICS = ["map", "ece", "ece_head", "ece_medium", "ece_tail"]
GROUP_METRICS = ("ece_head", "ece_medium", "ece_tail")  # shown only when some run reports them
# log.txt key spellings -> results.json keys
LOG_KEY_ALIASES = {"ace": "adaptive_ece", "adaptive_calibration_error": "adaptive_ece", "acc": "accuracy"}

# Our trainer names / calibration names -> the paper table's (prompt_method, calibration)
PAPER_TRAINER = {"zeroshotclip": "ZeroShot", "coop": "CoOp", "maple": "MaPLe", "kgcoop": "KgCoOp"}
PAPER_CALIB = {
    "none": "none", "tcpt": "TCPT", "mbls": "MbLS", "temperature": "TempScaling",
    "tempscaling": "TempScaling", "ts": "TempScaling", "dac": "DAC", "zsnorm": "ZS-Norm",
    "penalty": "Penalty",
}

RESULT_LINE = re.compile(r"^\*\s*([A-Za-z][\w \-]*?)\s*:\s*([-+0-9.,eE]+)\s*(%?)\s*$")


# ----------------------------------------------------------------------------- discovery
def _yaml_stems(directory):
    try:
        return {f[:-5] for f in os.listdir(directory) if f.endswith(".yaml")}
    except OSError:
        return set()


def split_cfg_dir(name, trainer, repo_root=REPO_ROOT):
    """Split a ``<cfg>`` / ``<cfg>_<calib>`` directory name into (config, calibration).

    Uses the config stems under ``configs/trainers/<trainer>`` (and ``CoOp`` for ZeroshotCLIP) and
    the presets under ``configs/calibration``; an unknown name is taken as a config with
    calibration ``none``.
    """
    cfgs = _yaml_stems(os.path.join(repo_root, "configs", "trainers", trainer))
    if trainer == "ZeroshotCLIP":
        cfgs |= _yaml_stems(os.path.join(repo_root, "configs", "trainers", "CoOp"))
    if name in cfgs:
        return name, "none"
    for c in sorted(cfgs, key=len, reverse=True):
        if name.startswith(c + "_"):
            return c, name[len(c) + 1:]
    calibs = _yaml_stems(os.path.join(repo_root, "configs", "calibration"))
    for k in sorted(calibs, key=len, reverse=True):
        if name.endswith("_" + k) and len(name) > len(k) + 1:
            return name[: -len(k) - 1], k
    return name, "none"


def parse_log(path):
    """Metrics of the last ``=> result`` block of a Dassl log (None when there is none).

    Keys are lower-cased with spaces/hyphens as underscores; percent values are kept as they are.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("=> result")]
    if not starts:
        return None
    metrics = {}
    for line in lines[starts[-1] + 1:]:
        m = RESULT_LINE.match(line.strip())
        if not m:
            if metrics:
                break
            continue
        key = re.sub(r"[\s\-]+", "_", m.group(1).strip().lower())
        key = LOG_KEY_ALIASES.get(key, key)
        try:
            metrics[key] = float(m.group(2).replace(",", ""))
        except ValueError:
            continue
    return metrics or None


def read_run(run_dir, split_name, rel_parts, repo_root=REPO_ROOT):
    """One run as a dict: side, dataset, shots, trainer, config, calibration, seed, status,
    metrics, source, path, error."""
    side = SPLIT_DIRS.get(split_name, DG_DIRS.get(split_name, split_name))
    run = {"side": side, "path": run_dir, "metrics": {}, "error": "", "source": None}
    # path fallback: <dataset>/shots_<K>/<trainer>/<cfgdir...>/seed<S>
    parts = list(rel_parts)
    run["seed"] = int(parts[-1][4:])
    run["dataset"] = parts[0] if len(parts) >= 2 else "?"
    run["shots"] = None
    if len(parts) >= 3 and re.fullmatch(r"shots_-?\d+", parts[1]):
        run["shots"] = int(parts[1][6:])
    run["trainer"] = parts[2] if len(parts) >= 4 else "?"
    cfgparts = parts[3:-1]
    if len(cfgparts) == 1:
        run["config"], run["calibration"] = split_cfg_dir(cfgparts[0], run["trainer"], repo_root)
    elif len(cfgparts) == 2:
        run["config"], run["calibration"] = cfgparts
    else:
        run["config"], run["calibration"] = "/".join(cfgparts) or "?", "none"

    rpath = os.path.join(run_dir, "results.json")
    lpath = os.path.join(run_dir, "log.txt")
    if os.path.isfile(rpath):
        run["source"] = "results.json"
        try:
            with open(rpath, encoding="utf-8") as f:
                data = json.load(f)
            if not isinstance(data, dict):
                raise ValueError("top level is not an object")
        except (OSError, ValueError) as e:
            run["status"] = "unreadable"
            run["error"] = f"{rpath}: {e}"
            return run
        for key in ("trainer", "config", "calibration", "dataset"):
            if data.get(key) not in (None, ""):
                run[key] = str(data[key])
        for key in ("seed", "shots"):
            if data.get(key) is not None:
                try:
                    run[key] = int(data[key])
                except (TypeError, ValueError):
                    pass
        if data.get("subsample") in ("base", "new"):
            run["side"] = data["subsample"]
        run["status"] = str(data.get("status", "finished"))
        run["error"] = str(data.get("error") or "")
        metrics = data.get("metrics") or {}
        run["metrics"] = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        if run["status"] == "finished" and "accuracy" not in run["metrics"]:
            run["status"] = "no-accuracy"
            run["error"] = f"{rpath}: metrics has no 'accuracy'"
    elif os.path.isfile(lpath):
        run["source"] = "log.txt"
        metrics = parse_log(lpath)
        if metrics and "accuracy" in metrics:
            run["status"] = "finished"
            run["metrics"] = metrics
        else:
            run["status"] = "unfinished"
            run["error"] = "log.txt has no '=> result' block with '* accuracy'"
    else:
        run["status"] = "unfinished"
        run["error"] = "no results.json or log.txt"
    return run


def _walk_runs(output_root, layout, split_names, repo_root):
    """``(split_name, run)`` for every ``seed<S>`` directory under ``OUTPUT_ROOT/<layout>/<split>``."""
    for split_name in split_names:
        top = os.path.join(output_root, layout, split_name)
        if not os.path.isdir(top):
            continue
        for dirpath, dirnames, _ in os.walk(top):
            dirnames.sort()
            if re.fullmatch(r"seed\d+", os.path.basename(dirpath)):
                dirnames[:] = []  # checkpoints etc. below
                rel = os.path.relpath(dirpath, top).split(os.sep)
                yield split_name, read_run(dirpath, split_name, rel, repo_root)


def collect_runs(output_root, repo_root=REPO_ROOT):
    """Every ``seed<S>`` directory under ``OUTPUT_ROOT/base2new/{train_base,test_new}``."""
    return [run for _, run in _walk_runs(output_root, "base2new", SPLIT_DIRS, repo_root)]


# ----------------------------------------------------------------------------- summary
def harmonic_mean(a, b):
    if a is None or b is None:
        return None
    return 0.0 if a + b == 0 else 2.0 * a * b / (a + b)


def _mean_std(values):
    if not values:
        return None, None
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std


def dataset_sort_key(name):
    return (DATASET_ORDER.get(name, len(DATASET_ORDER)), name)


def group_key(run):
    return (run["trainer"], run["config"], run["calibration"], run["shots"])


def collect_dg_runs(output_root, repo_root=REPO_ROOT):
    """Every ``seed<S>`` directory under ``OUTPUT_ROOT/dg/{train,test}`` (side ``source``/``target``)."""
    runs = []
    for split_name, run in _walk_runs(output_root, "dg", DG_DIRS, repo_root):
        run["side"] = DG_DIRS[split_name]  # results.json says subsample "all"
        runs.append(run)
    return runs


def summarize_dg(runs, metrics=DG_METRICS, seeds=None):
    """Domain generalisation: per group, per dataset (sources first, then targets) the mean and
    sample std over finished seeds of each metric. Returns ``(groups, columns, problems)``:
    ``groups`` maps a group key to ``{"<dataset>_<metric>": mean, "<dataset>_<metric>_std": std,
    "n": {dataset: seeds}}``; ``columns`` lists the ``(dataset, side, metric)`` with a value."""
    by_group = {}
    for r in runs:
        by_group.setdefault(group_key(r), []).append(r)
    ds_side = {}
    for r in runs:
        ds_side.setdefault(r["dataset"], r["side"])
    ds_order = sorted(ds_side, key=lambda d: (0 if ds_side[d] == "source" else 1, dataset_sort_key(d)))
    groups, problems, present = {}, [], set()
    for gkey in sorted(by_group, key=lambda k: tuple(str(x) for x in k)):
        gruns = by_group[gkey]
        exp_seeds = sorted(set(seeds) if seeds else {r["seed"] for r in gruns})
        row = {"n": {}}
        for ds in ds_order:
            cand = [r for r in gruns if r["dataset"] == ds]
            fin = {}
            for r in cand:
                if r["status"] == "finished":
                    fin.setdefault(r["seed"], r)
            for seed in exp_seeds:
                if seed not in fin:
                    bad = [r for r in cand if r["seed"] == seed]
                    problems.append(dict(group=gkey, dataset=ds, side=ds_side[ds], seed=seed,
                                         status=bad[0]["status"] if bad else "missing",
                                         path=bad[0]["path"] if bad else "", error=bad[0]["error"] if bad else ""))
            fin = [fin[s] for s in exp_seeds if s in fin]
            row["n"][ds] = len(fin)
            for m in metrics:
                key = METRIC_KEYS.get(m, m)
                vals = [r["metrics"][key] for r in fin if key in r["metrics"]]
                row[f"{ds}_{m}"], row[f"{ds}_{m}_std"] = _mean_std(vals)
                if vals:
                    present.add((ds, m))
        groups[gkey] = row
    columns = [(ds, ds_side[ds], m) for ds in ds_order for m in metrics if (ds, m) in present]
    return groups, columns, problems


def format_dg(groups, columns, fmt="md", std=True):
    """The domain-generalisation table: a row per group, a column per (dataset, metric)."""
    def label(ds, side, m):
        return f"{DISPLAY_NAME.get(ds, ds)}{' (source)' if side == 'source' else ''} {METRIC_LABEL.get(m, m)}"

    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        header = ["trainer", "config", "calibration", "shots"]
        for ds, _, m in columns:
            header += [f"{ds}_{m}"] + ([f"{ds}_{m}_std"] if std else [])
        w.writerow(header)
        for gkey, row in groups.items():
            rec = [gkey[0], gkey[1], gkey[2], "" if gkey[3] is None else gkey[3]]
            for ds, _, m in columns:
                rec.append(_fmt(row.get(f"{ds}_{m}"), 4))
                if std:
                    rec.append(_fmt(row.get(f"{ds}_{m}_std"), 4))
            w.writerow(rec)
        return out.getvalue()
    header = ["Method", "Calibration"] + [label(*c) for c in columns]
    body = []
    for gkey, row in groups.items():
        rec = [f"{gkey[0]} ({gkey[1]})", str(gkey[2])]
        for ds, _, m in columns:
            rec.append(_cell(row, f"{ds}_{m}", std, " ± {}" if fmt == "md" else r" {{\scriptsize$\pm${}}}"))
        body.append(rec)
    if fmt == "md":
        lines = ["### Domain generalisation\n", "| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
        lines += ["| " + " | ".join(rec) + " |" for rec in body]
        return "\n".join(lines) + "\n"
    lines = ["% Domain generalisation", r"\begin{tabular}{ll" + "r" * (len(header) - 2) + "}", r"\toprule",
             " & ".join(_latex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join([_latex_escape(rec[0]), _latex_escape(rec[1])] + rec[2:]) + r" \\" for rec in body]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def summarize(runs, metrics=("acc", "ece"), datasets=None, seeds=None, primary="acc"):
    """Rows per (group, dataset) plus an ``average`` row per group, and the list of problems.

    Returns ``(groups, problems, notes)``: ``groups`` maps a group key ``(trainer, config,
    calibration, shots)`` to its list of row dicts (datasets in the papers' order, ``average``
    last); a row holds ``dataset``, ``<side>_<metric>`` and ``<side>_<metric>_std`` for side in
    base/new, ``hm``, ``n_seeds`` (seeds finished on both sides), ``n_base``, ``n_new`` and
    ``seeds_base``/``seeds_new``. ``problems`` are dicts (group, dataset, side, seed, status,
    path, error) for missing and not-finished runs; ``notes`` are strings. ``hm`` is the harmonic
    mean of the ``primary`` metric (``acc``; ``map`` for multi-label tables).
    """
    by_group = {}
    for r in runs:
        by_group.setdefault(group_key(r), []).append(r)
    groups, problems, notes = {}, [], []
    for gkey in sorted(by_group, key=lambda k: tuple(str(x) for x in k)):
        gruns = by_group[gkey]
        exp_seeds = sorted(set(seeds) if seeds else {r["seed"] for r in gruns})
        exp_datasets = sorted(set(datasets) if datasets else {r["dataset"] for r in gruns},
                              key=dataset_sort_key)
        index = {}
        for r in gruns:
            index.setdefault((r["dataset"], r["side"], r["seed"]), []).append(r)
        rows = []
        for ds in exp_datasets:
            row = {"dataset": ds}
            finished = {}
            for side in ("base", "new"):
                fin = []
                for seed in exp_seeds:
                    cand = index.get((ds, side, seed), [])
                    ok = [r for r in cand if r["status"] == "finished"]
                    if ok:
                        if len(ok) > 1:
                            notes.append(f"{_glabel(gkey)} {ds} {side} seed{seed}: {len(ok)} finished "
                                         f"runs, using {ok[0]['path']}")
                        fin.append(ok[0])
                    elif cand:
                        for r in cand:
                            problems.append(dict(group=gkey, dataset=ds, side=side, seed=seed,
                                                 status=r["status"], path=r["path"], error=r["error"]))
                    else:
                        problems.append(dict(group=gkey, dataset=ds, side=side, seed=seed,
                                             status="missing", path="", error=""))
                # runs with seeds outside an explicit --seeds list are ignored, say so
                finished[side] = fin
                row[f"n_{side}"] = len(fin)
                row[f"seeds_{side}"] = [r["seed"] for r in fin]
                for m in metrics:
                    key = METRIC_KEYS.get(m, m)
                    vals = [r["metrics"][key] for r in fin if key in r["metrics"]]
                    if fin and len(vals) < len(fin) and (vals or m not in GROUP_METRICS):
                        notes.append(f"{_glabel(gkey)} {ds} {side}: metric '{key}' absent in "
                                     f"{len(fin) - len(vals)} of {len(fin)} runs")
                    row[f"{side}_{m}"], row[f"{side}_{m}_std"] = _mean_std(vals)
            row["hm"] = harmonic_mean(row.get(f"base_{primary}"), row.get(f"new_{primary}"))
            both = set(row["seeds_base"]) & set(row["seeds_new"])
            row["n_seeds"] = len(both)
            if row["n_base"] != row["n_new"]:
                notes.append(f"{_glabel(gkey)} {ds}: base averages seeds {row['seeds_base']}, "
                             f"new averages seeds {row['seeds_new']}")
            rows.append(row)
        avg = {"dataset": "average", "n_seeds": None, "n_base": None, "n_new": None,
               "seeds_base": [], "seeds_new": []}
        for side in ("base", "new"):
            for m in metrics:
                col = f"{side}_{m}"
                vals = [row[col] for row in rows if row.get(col) is not None]
                avg[col] = statistics.fmean(vals) if vals else None
                avg[col + "_std"] = None
                if vals and len(vals) < len(rows):
                    notes.append(f"{_glabel(gkey)} average {col}: over {len(vals)} of "
                                 f"{len(rows)} datasets")
        avg["hm"] = harmonic_mean(avg.get(f"base_{primary}"), avg.get(f"new_{primary}"))
        rows.append(avg)
        groups[gkey] = rows
    if seeds:
        extra = sorted({(r["dataset"], r["seed"]) for r in runs if r["seed"] not in set(seeds)})
        if extra:
            notes.append(f"ignored runs of seeds outside --seeds: {extra}")
    return groups, problems, notes


def _glabel(gkey):
    trainer, config, calib, shots = gkey
    return f"{trainer}/{config}/{calib}/shots_{shots}"


# ----------------------------------------------------------------------------- paper tables
def load_paper_table(path=os.path.join(PAPER_DIR, "tcpt_base2new.csv")):
    """{(side, prompt_method, calibration, metric): {column: float}} from the TCPT table."""
    table = {}
    with open(path, newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            key = (rec["split"], rec["prompt_method"], rec["calibration"], rec["metric"])
            table[key] = {c: float(v) for c, v in rec.items()
                          if c not in ("split", "prompt_method", "calibration", "metric") and v not in ("", None)}
    return table


def paper_names(trainer, calibration):
    """(prompt_method, calibration) as the paper's table spells them, or None."""
    pm = PAPER_TRAINER.get(str(trainer).lower())
    pc = PAPER_CALIB.get(re.sub(r"[\s_\-]", "", str(calibration).lower()))
    if pm is None or pc is None:
        return None
    return pm, pc


def paper_value(table, gkey, dataset, column, datasets=None):
    """Published value for a row/column (``base_acc``, ``new_ece``, ``hm``), or None.

    For ``dataset == "average"`` with ``datasets`` (the group's datasets) other than the 11
    benchmarks, the paper's numbers are averaged over those same datasets (None when one of
    them has no published value), so that the average rows compare like with like; with all 11
    it is the paper's ``Avg`` column.
    """
    names = paper_names(gkey[0], gkey[2])
    if names is None:
        return None
    if column == "hm":
        b = paper_value(table, gkey, dataset, "base_acc", datasets)
        n = paper_value(table, gkey, dataset, "new_acc", datasets)
        return harmonic_mean(b, n)
    if dataset == "average" and datasets is not None and set(datasets) != set(DATASET_ORDER):
        vals = [paper_value(table, gkey, d, column) for d in datasets]
        if not vals or any(v is None for v in vals):
            return None
        return statistics.fmean(vals)
    col = PAPER_COLUMN.get(dataset)
    if col is None:
        return None
    side, _, metric = column.partition("_")
    return table.get((side, names[0], names[1], metric), {}).get(col)


def _row_datasets(rows):
    return [r["dataset"] for r in rows if r["dataset"] != "average"]


# ----------------------------------------------------------------------------- formatting
def value_columns(metrics, primary="acc"):
    cols = [f"base_{metrics[0]}", f"new_{metrics[0]}", "hm"] if metrics[0] == primary else []
    for m in metrics:
        if m == primary:
            continue
        cols += [f"base_{m}", f"new_{m}"]
    if primary not in metrics:
        cols = [c for c in cols if c != "hm"]
    return cols


def column_label(col):
    if col == "hm":
        return "HM"
    side, _, m = col.partition("_")
    return f"{side.capitalize()} {METRIC_LABEL.get(m, m)}"


def _fmt(v, digits=2):
    return "" if v is None else f"{v:.{digits}f}"


def _cell(row, col, std, pm):
    v = row.get(col)
    if v is None:
        return "-"
    s = _fmt(v)
    sd = row.get(col + "_std")
    if std and sd is not None:
        s += pm.format(_fmt(sd))
    return s


def _show_group_columns(groups):
    return len(groups) > 1


def format_csv(groups, metrics, std=True, paper=None, primary="acc"):
    cols = value_columns(metrics, primary)
    header = ["dataset"]
    if _show_group_columns(groups):
        header += ["trainer", "config", "calibration", "shots"]
    for c in cols:
        header.append(c)
        if c != "hm" and std:
            header.append(c + "_std")
        if paper is not None:
            header.append("paper_" + c)
    header += ["n_seeds", "n_base", "n_new"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for gkey, rows in groups.items():
        for row in rows:
            rec = [row["dataset"]]
            if _show_group_columns(groups):
                rec += [gkey[0], gkey[1], gkey[2], "" if gkey[3] is None else gkey[3]]
            for c in cols:
                rec.append(_fmt(row.get(c), 4))
                if c != "hm" and std:
                    rec.append(_fmt(row.get(c + "_std"), 4))
                if paper is not None:
                    rec.append(_fmt(paper_value(paper, gkey, row["dataset"], c, _row_datasets(rows)), 2))
            rec += ["" if row.get(k) is None else row[k] for k in ("n_seeds", "n_base", "n_new")]
            w.writerow(rec)
    return out.getvalue()


def _group_title(gkey):
    trainer, config, calib, shots = gkey
    return f"{trainer} ({config}), calibration: {calib}, {shots} shots"


def _latex_escape(s):
    return str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def format_long(groups, metrics, fmt="md", std=True, paper=None, primary="acc"):
    """One table per group, one row per dataset plus the average (CoCoOp/TCPT style)."""
    cols = value_columns(metrics, primary)
    out = []
    for gkey, rows in groups.items():
        header = ["Dataset"]
        for c in cols:
            header.append(column_label(c))
            if paper is not None:
                header.append("paper")
        header.append("Seeds")
        body = []
        for row in rows:
            name = DISPLAY_NAME.get(row["dataset"], row["dataset"])
            rec = [name]
            for c in cols:
                rec.append(_cell(row, c, std, " ± {}" if fmt == "md" else r" {{\scriptsize$\pm${}}}"))
                if paper is not None:
                    p = paper_value(paper, gkey, row["dataset"], c, _row_datasets(rows))
                    rec.append("-" if p is None else _fmt(p))
            if row["dataset"] == "average":
                rec.append("")
            else:
                nb, nn = row["n_base"], row["n_new"]
                rec.append(str(nb) if nb == nn else f"{nb}/{nn}")
            body.append(rec)
        if fmt == "md":
            out.append(f"### {_group_title(gkey)}\n")
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
            for rec in body:
                if rec[0] == "Average":
                    rec = [f"**{x}**" if x not in ("", "-") else x for x in rec]
                out.append("| " + " | ".join(rec) + " |")
            out.append("")
        else:
            out.append("% " + _group_title(gkey))
            out.append(r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}")
            out.append(r"\toprule")
            out.append(" & ".join(_latex_escape(h) for h in header) + r" \\")
            out.append(r"\midrule")
            for rec in body:
                if rec[0] == "Average":
                    out.append(r"\midrule")
                cells = [_latex_escape(rec[0])] + rec[1:]
                out.append(" & ".join(cells) + r" \\")
            out.append(r"\bottomrule")
            out.append(r"\end{tabular}")
            out.append("")
    return "\n".join(out)


def format_wide(groups, metrics, fmt="md", paper=None, primary="acc"):
    """TCPT's layout: per side a table with datasets as columns and (method, metric) as rows."""
    all_ds = []
    for rows in groups.values():
        for row in rows:
            if row["dataset"] != "average" and row["dataset"] not in all_ds:
                all_ds.append(row["dataset"])
    all_ds.sort(key=dataset_sort_key)
    all_ds.append("average")
    header = ["Method", "Calibration", "Metric"] + [PAPER_COLUMN.get(d, d) for d in all_ds]
    out = []
    sections = [(side, [m for m in metrics]) for side in ("base", "new")]
    if primary in metrics:
        sections.append(("hm", [primary]))
    for side, ms in sections:
        body = []
        for gkey, rows in groups.items():
            byds = {row["dataset"]: row for row in rows}
            for m in ms:
                col = "hm" if side == "hm" else f"{side}_{m}"
                label = [f"{gkey[0]} ({gkey[1]})", str(gkey[2]), "HM" if side == "hm" else METRIC_LABEL.get(m, m)]
                body.append(label + [_fmt(byds[d].get(col)) if d in byds and byds[d].get(col) is not None
                                     else "-" for d in all_ds])
                if paper is not None and paper_names(gkey[0], gkey[2]) is not None:
                    vals = [paper_value(paper, gkey, d, col, _row_datasets(rows)) for d in all_ds]
                    body.append(["  paper", "", ""] + ["-" if v is None else _fmt(v) for v in vals])
        title = {"base": "Base classes", "new": "New classes", "hm": "Harmonic mean"}[side]
        if fmt == "md":
            out.append(f"### {title}\n")
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|")
            out += ["| " + " | ".join(rec) + " |" for rec in body]
            out.append("")
        else:
            out.append("% " + title)
            out.append(r"\begin{tabular}{lll" + "r" * (len(header) - 3) + "}")
            out.append(r"\toprule")
            out.append(" & ".join(_latex_escape(h) for h in header) + r" \\")
            out.append(r"\midrule")
            out += [" & ".join(_latex_escape(x) for x in rec) + r" \\" for rec in body]
            out.append(r"\bottomrule")
            out.append(r"\end{tabular}")
            out.append("")
    return "\n".join(out)


def format_problems(problems, notes, fmt="md"):
    lines = []
    if problems:
        lines.append(f"Missing or failed runs ({len(problems)}), not averaged:")
        for p in problems:
            where = f" {p['path']}" if p["path"] else ""
            first = p["error"].strip().splitlines()[0] if p["error"].strip() else ""
            if len(first) > 200:
                first = first[:197] + "..."
            err = f": {first}" if first else ""
            lines.append(f"- {_glabel(p['group'])} {p['dataset']} {p['side']} seed{p['seed']}: "
                         f"{p['status']}{where}{err}")
    if notes:
        lines.append("Notes:")
        lines += [f"- {n}" for n in notes]
    if not lines:
        return ""
    if fmt == "latex":
        return "\n".join("% " + x for x in lines) + "\n"
    if fmt == "csv":
        return "\n".join("# " + x for x in lines) + "\n"
    return "\n".join(lines) + "\n"


def summary_rows(groups):
    """Rows for ``calibration.plots.save_summary_figure``: one per group, the average row."""
    rows = []
    for gkey, grows in groups.items():
        avg = grows[-1]
        label = gkey[0] if gkey[2] == "none" else f"{gkey[0]}+{gkey[2]}"
        if sum(1 for k in groups if k[0] == gkey[0] and k[2] == gkey[2]) > 1:
            label += f" ({gkey[1]})"
        rows.append({"label": label, "base_acc": avg.get("base_acc"), "new_acc": avg.get("new_acc"),
                     "base_ece": avg.get("base_ece"), "new_ece": avg.get("new_ece")})
    return rows


# ----------------------------------------------------------------------------- CLI
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
    p.add_argument("--paper-table", default=os.path.join(PAPER_DIR, "tcpt_base2new.csv"))
    p.add_argument("--plot", metavar="PATH", help="save a summary figure (base/new acc and ECE per group)")
    p.add_argument("--trainer", nargs="+", help="keep only these trainers")
    p.add_argument("--config", nargs="+", help="keep only these method configs")
    p.add_argument("--calibration", nargs="+", help="keep only these calibration names")
    p.add_argument("--shots", type=int, help="keep only this number of shots")
    p.add_argument("--datasets", nargs="+", help="expected datasets (others are dropped)")
    p.add_argument("--seeds", nargs="+", type=int, help="expected seeds (others are dropped)")
    p.add_argument("--no-std", action="store_true", help="no std in md/latex cells and no _std csv columns")
    p.add_argument("--strict", action="store_true", help="exit 2 when a run is missing or failed")
    return p


def _filter(runs, args):
    if args.trainer:
        runs = [r for r in runs if r["trainer"] in args.trainer]
    if args.config:
        runs = [r for r in runs if r["config"] in args.config]
    if args.calibration:
        runs = [r for r in runs if r["calibration"] in args.calibration]
    if args.shots is not None:
        runs = [r for r in runs if r["shots"] == args.shots]
    if args.datasets:
        runs = [r for r in runs if r["dataset"] in args.datasets]
    return runs


def _metric_list(names):
    out = []
    for m in names:
        m = m.lower() if m.lower() in METRIC_KEYS or m.lower() in METRIC_LABEL else m
        if m not in out:
            out.append(m)
    return out


def _present(runs, metrics):
    """Drop the head/medium/tail columns that no finished run reports."""
    have = set()
    for r in runs:
        if r["status"] == "finished":
            have |= set(r["metrics"])
    return [m for m in metrics if m not in GROUP_METRICS or METRIC_KEYS.get(m, m) in have]


def main_dg(args):
    top = os.path.join(args.output_root, "dg")
    if not os.path.isdir(top):
        print(f"error: {top} does not exist; expected OUTPUT_ROOT/dg/{{train,test}}/<dataset>/shots_<K>/"
              "<trainer>/<cfg>/seed<S>/results.json (scripts/multilabel/common_ml.sh)", file=sys.stderr)
        return 1
    runs = _filter(collect_dg_runs(args.output_root), args)
    if not runs:
        print(f"error: no runs (seed<S> directories) under {top} match the filters", file=sys.stderr)
        return 1
    metrics = _present(runs, _metric_list(args.metrics or DG_METRICS))
    groups, columns, problems = summarize_dg(runs, metrics, seeds=args.seeds)
    sys.stdout.write(format_dg(groups, columns, fmt=args.format, std=not args.no_std))
    extra = format_problems(problems, [], args.format)
    if extra:
        (sys.stderr if args.format == "csv" else sys.stdout).write(("" if args.format == "csv" else "\n") + extra)
    return 2 if args.strict and problems else 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.dg:
        return main_dg(args)
    base = os.path.join(args.output_root, "base2new")
    if not os.path.isdir(base):
        print(f"error: {base} does not exist; expected OUTPUT_ROOT/base2new/{{train_base,test_new}}/"
              "<dataset>/shots_<K>/<trainer>/<cfg>/seed<S>/results.json", file=sys.stderr)
        return 1
    runs = _filter(collect_runs(args.output_root), args)
    if not runs:
        print(f"error: no runs (seed<S> directories) under {base} match the filters", file=sys.stderr)
        return 1
    finished = [r for r in runs if r["status"] == "finished"]
    multilabel = args.multilabel or (bool(finished)
                                     and all("mAP" in r["metrics"] for r in finished))
    primary = "map" if multilabel else "acc"
    metrics = _metric_list(args.metrics or (ML_METRICS if multilabel else ["acc", "ece"]))
    if multilabel:
        metrics = _present(runs, metrics)
    if primary in metrics:
        metrics.remove(primary)
        metrics.insert(0, primary)
    groups, problems, notes = summarize(runs, metrics, datasets=args.datasets, seeds=args.seeds, primary=primary)
    paper = None
    if args.compare_paper:
        paper = load_paper_table(args.paper_table)
        if not any(paper_names(g[0], g[2]) for g in groups):
            notes.append("--compare-paper: no group maps to a row of the paper table "
                         f"(known trainers {sorted(PAPER_TRAINER.values())}, calibrations {sorted(set(PAPER_CALIB.values()))})")
        for g, rows in groups.items():
            ds = _row_datasets(rows)
            if paper_names(g[0], g[2]) and set(ds) != set(DATASET_ORDER):
                notes.append(f"--compare-paper: {_glabel(g)}: the paper's average is taken over the same "
                             f"{len(ds)} dataset(s) as ours, not its 11-dataset Avg column")
    std = not args.no_std
    if args.format == "csv":
        text = format_csv(groups, metrics, std=std, paper=paper, primary=primary)
    elif args.layout == "wide":
        text = format_wide(groups, metrics, fmt=args.format, paper=paper, primary=primary)
    else:
        text = format_long(groups, metrics, fmt=args.format, std=std, paper=paper, primary=primary)
    sys.stdout.write(text)
    extra = format_problems(problems, notes, args.format)
    if extra:
        # csv: keep stdout machine-readable, problems go to stderr
        (sys.stderr if args.format == "csv" else sys.stdout).write(("" if args.format == "csv" else "\n") + extra)
    if args.plot:
        if REPO_ROOT not in sys.path:
            sys.path.insert(0, REPO_ROOT)
        from cpt.calibration.plots import save_summary_figure  # lazy: needs matplotlib
        save_summary_figure(summary_rows(groups), args.plot)
        print(f"summary figure saved to {args.plot}", file=sys.stderr)
    if args.strict and problems:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
