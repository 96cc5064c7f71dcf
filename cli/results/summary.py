"""Aggregation: per (group, dataset) means and sample stds over seeds, HM, the average row, and
the list of missing / not-finished runs (never averaged in). Rows are dicts keyed by column."""
import statistics
from dataclasses import dataclass

from .. import catalog
from .configs import describe, labels, split_configs
from .runs import Record

DATASET_ORDER = {stem: i for i, stem in enumerate(catalog.BENCHMARKS)}
# Short metric names (columns) -> results.json metric keys.
METRIC_KEYS = {"acc": "accuracy", "ece": "ece", "mce": "mce", "ace": "adaptive_ece", "piece": "piece",
               "map": "mAP", "cf1": "cf1", "of1": "of1"}
GROUP_METRICS = ("ece_head", "ece_medium", "ece_tail")  # shown only when some run reports them


@dataclass
class Problem(Record):
    """A run expected but missing or not finished (``status`` says which)."""
    group: tuple
    dataset: str
    side: str
    seed: int
    status: str = "missing"
    path: str = ""
    error: str = ""


def harmonic_mean(a, b):
    return None if a is None or b is None else 0.0 if a + b == 0 else 2.0 * a * b / (a + b)


def mean_std(values):
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def dataset_sort_key(name):
    return (DATASET_ORDER.get(name, len(DATASET_ORDER)), name)


def glabel(gkey):
    return "{}/{}/{}/shots_{}".format(*gkey)


def averaged_datasets(rows):
    """The datasets the ``average`` row is taken over (one configuration each)."""
    return [r["dataset"] for r in rows if r["dataset"] != "average" and "variant" not in r]


def config_conflicts(groups):
    """One line per row split by configuration (``results.configs``), in table order."""
    rows = [row for v in groups.values() for row in (v if isinstance(v, list) else [v])]
    return list(dict.fromkeys(row["configs"] for row in rows if row.get("configs")))


def by_group(runs):
    groups = {}
    for r in runs:
        groups.setdefault(r.group, []).append(r)
    return {k: groups[k] for k in sorted(groups, key=lambda k: tuple(str(x) for x in k))}


def metric_values(runs, m):
    key = METRIC_KEYS.get(m, m)
    return key, [r.metrics[key] for r in runs if key in r.metrics]


def side_stats(row, side, fin, metrics, note):
    """``<side>_<metric>`` mean/std columns of ``row`` over the finished runs ``fin``."""
    row[f"n_{side}"], row[f"seeds_{side}"] = len(fin), [r.seed for r in fin]
    for m in metrics:
        key, vals = metric_values(fin, m)
        if fin and len(vals) < len(fin) and (vals or m not in GROUP_METRICS):
            note(f"{side}: metric '{key}' absent in {len(fin) - len(vals)} of {len(fin)} runs")
        row[f"{side}_{m}"], row[f"{side}_{m}_std"] = mean_std(vals)


def pick_finished(index, gkey, ds, side, seeds, problems, notes):
    """The first finished run of each seed (``index``: ``(dataset, side, seed) -> runs``); a
    :class:`Problem` for each seed without one."""
    fin = []
    for seed in seeds:
        cand = index.get((ds, side, seed), [])
        ok = [r for r in cand if r.finished]
        if len(ok) > 1:
            notes.append(f"{glabel(gkey)} {ds} {side} seed{seed}: {len(ok)} finished runs, using {ok[0].path}")
        fin += ok[:1]
        if not ok:
            problems += [Problem(gkey, ds, side, seed, r.status, r.path, r.error) for r in cand] \
                or [Problem(gkey, ds, side, seed)]
    return fin


def config_rows(gkey, ds, picked, metrics, primary):
    """The rows of one dataset: one, or one per configuration (``results.configs``) with its
    ``variant`` label and the ``configs`` line. Returns ``(rows, {side: notes}, other notes)``."""
    configs = split_configs(picked)
    conflict = f"{glabel(gkey)} {ds}: {describe(configs)}" if configs else None
    parts = list(zip(labels(configs), (c.runs for c in configs))) if configs else [(None, picked)]
    rows, stat_notes, other = [], {"base": [], "new": []}, []
    for label, by_side in parts:
        row, where = {"dataset": ds}, f"{glabel(gkey)} {ds}" + (f" [{label}]" if label else "")
        if label:
            row["variant"], row["configs"] = label, conflict
        for side in ("base", "new"):
            side_stats(row, side, by_side.get(side, []), metrics,
                       lambda n, side=side, where=where: stat_notes[side].append(f"{where} {n}"))
        row["hm"] = harmonic_mean(row.get(f"base_{primary}"), row.get(f"new_{primary}"))
        row["n_seeds"] = len(set(row["seeds_base"]) & set(row["seeds_new"]))
        if row["n_base"] != row["n_new"]:
            other.append(f"{where}: base averages seeds {row['seeds_base']}, new averages seeds {row['seeds_new']}")
        rows.append(row)
    return rows, stat_notes, other + ([conflict] if conflict else [])


def summarize(runs, metrics=("acc", "ece"), datasets=None, seeds=None, primary="acc"):
    """``(groups, problems, notes)``: ``groups`` maps a group key ``(trainer, config, calibration,
    shots)`` to its row dicts (datasets in the papers' order, then the ``average`` row); a row holds
    ``dataset``, ``<side>_<metric>`` and ``<side>_<metric>_std`` for side in base/new, ``hm`` (of the
    ``primary`` metric), ``n_seeds`` (seeds finished on both sides), ``n_base``, ``n_new`` and
    ``seeds_base``/``seeds_new``; ``problems`` are :class:`Problem` records, ``notes`` strings. The
    averaging rules: ``parse.py``. A dataset whose seeds ran different configurations
    (fingerprints, ``results.configs``) has a row per configuration, with ``variant`` (its label) and
    ``configs`` (the line naming the keys that differ); the average row leaves it out."""
    groups, problems, notes = {}, [], []
    for gkey, gruns in by_group(runs).items():
        exp_seeds = sorted(set(seeds) if seeds else {r.seed for r in gruns})
        exp_datasets = sorted(set(datasets) if datasets else {r.dataset for r in gruns}, key=dataset_sort_key)
        index = {}
        for r in gruns:
            index.setdefault((r.dataset, r.side, r.seed), []).append(r)
        rows = []
        for ds in exp_datasets:
            picked, pick_notes = {}, {}
            for side in ("base", "new"):
                pick_notes[side] = []
                picked[side] = pick_finished(index, gkey, ds, side, exp_seeds, problems, pick_notes[side])
            ds_rows, stat_notes, other_notes = config_rows(gkey, ds, picked, metrics, primary)
            rows += ds_rows
            notes += pick_notes["base"] + stat_notes["base"] + pick_notes["new"] + stat_notes["new"] + other_notes
        avg = {"dataset": "average", "n_seeds": None, "n_base": None, "n_new": None,
               "seeds_base": [], "seeds_new": []}
        single = [row for row in rows if "variant" not in row]
        for col in (f"{side}_{m}" for side in ("base", "new") for m in metrics):
            vals = [row[col] for row in single if row.get(col) is not None]
            avg[col], avg[col + "_std"] = (statistics.fmean(vals) if vals else None), None
            if vals and len(vals) < len(single):
                notes.append(f"{glabel(gkey)} average {col}: over {len(vals)} of {len(single)} datasets")
        split = sorted({row["dataset"] for row in rows if "variant" in row}, key=dataset_sort_key)
        if split:
            notes.append(f"{glabel(gkey)} average: leaves out {', '.join(split)} (several configurations)")
        avg["hm"] = harmonic_mean(avg.get(f"base_{primary}"), avg.get(f"new_{primary}"))
        groups[gkey] = rows + [avg]
    if seeds:
        extra = sorted({(r.dataset, r.seed) for r in runs if r.seed not in set(seeds)})
        if extra:
            notes.append(f"ignored runs of seeds outside --seeds: {extra}")
    return groups, problems, notes


def summarize_dg(runs, metrics, seeds=None):
    """Domain generalisation: per group, per dataset (sources first, then targets) the mean and
    sample std over finished seeds of each metric. Returns ``(groups, columns, problems)``:
    ``groups`` maps a group key to ``{"<dataset>_<metric>": mean, "<dataset>_<metric>_std": std,
    "n": {dataset: seeds}}``; ``columns`` lists the ``(dataset, side, metric)`` with a value. A
    group whose seeds ran different configurations has a row per configuration, keyed by the group
    key plus its ``variant`` label (``results.configs``)."""
    ds_side = {}
    for r in runs:
        ds_side.setdefault(r.dataset, r.side)
    ds_order = sorted(ds_side, key=lambda d: (0 if ds_side[d] == "source" else 1, dataset_sort_key(d)))
    groups, problems, present = {}, [], set()
    for gkey, gruns in by_group(runs).items():
        exp_seeds = sorted(set(seeds) if seeds else {r.seed for r in gruns})
        picked = {}
        for ds in ds_order:
            fin = []
            for seed in exp_seeds:  # the first finished run of each seed; else a problem (its first run)
                mine = [r for r in gruns if r.dataset == ds and r.seed == seed]
                ok = [r for r in mine if r.finished]
                fin += ok[:1]
                if not ok:
                    problems.append(Problem(gkey, ds, ds_side[ds], seed, mine[0].status, mine[0].path, mine[0].error)
                                    if mine else Problem(gkey, ds, ds_side[ds], seed))
            picked[ds] = fin
        configs = split_configs(picked)
        conflict = f"{glabel(gkey)}: {describe(configs)}" if configs else None
        parts = list(zip(labels(configs), (c.runs for c in configs))) if configs else [(None, picked)]
        for label, by_ds in parts:
            row = {"n": {}, **({"variant": label, "configs": conflict} if label else {})}
            for ds in ds_order:
                fin = by_ds.get(ds, [])
                row["n"][ds] = len(fin)
                for m in metrics:
                    _, vals = metric_values(fin, m)
                    row[f"{ds}_{m}"], row[f"{ds}_{m}_std"] = mean_std(vals)
                    if vals:
                        present.add((ds, m))
            groups[gkey + ((label,) if label else ())] = row
    columns = [(ds, ds_side[ds], m) for ds in ds_order for m in metrics if (ds, m) in present]
    return groups, columns, problems
