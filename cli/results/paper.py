"""The published numbers (``scripts/paper_tables/tcpt_base2new.csv``) beside ours. A method's
``prompt_method`` in that table is its catalog entry's ``paper`` field."""
import csv
import os
import re
import statistics

from .. import catalog
from .summary import DATASET_ORDER, averaged_datasets, glabel, harmonic_mean

PAPER_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "scripts",
                         "paper_tables")
PAPER_TABLE = os.path.join(PAPER_DIR, "tcpt_base2new.csv")
PAPER_COLUMN = {stem: col for stem, col, _ in catalog.DATASETS}
PAPER_COLUMN["average"] = "Avg"
# our calibration names (spaces, "_" and "-" removed) -> the paper table's
PAPER_CALIB = {
    "none": "none", "tcpt": "TCPT", "mbls": "MbLS", "temperature": "TempScaling",
    "tempscaling": "TempScaling", "ts": "TempScaling", "dac": "DAC", "zsnorm": "ZS-Norm",
    "penalty": "Penalty",
}


def paper_trainers():
    return sorted({m.paper for _, m in catalog.METHODS.items() if m.paper})


def load_paper_table(path=PAPER_TABLE):
    """{(side, prompt_method, calibration, metric): {column: float}} from the TCPT table."""
    table, keys = {}, ("split", "prompt_method", "calibration", "metric")
    with open(path, newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            table[tuple(rec[k] for k in keys)] = {c: float(v) for c, v in rec.items()
                                                  if c not in keys and v not in ("", None)}
    return table


def paper_names(trainer, calibration):
    """(prompt_method, calibration) as the paper's table spells them, or None."""
    pm = next((m.paper for m in catalog.methods_of_trainer(str(trainer)) if m.paper), None)
    pc = PAPER_CALIB.get(re.sub(r"[\s_\-]", "", str(calibration).lower()))
    return None if pm is None or pc is None else (pm, pc)


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
        return harmonic_mean(paper_value(table, gkey, dataset, "base_acc", datasets),
                             paper_value(table, gkey, dataset, "new_acc", datasets))
    if dataset == "average" and datasets is not None and set(datasets) != set(DATASET_ORDER):
        vals = [paper_value(table, gkey, d, column) for d in datasets]
        return None if not vals or any(v is None for v in vals) else statistics.fmean(vals)
    col = PAPER_COLUMN.get(dataset)
    if col is None:
        return None
    side, _, metric = column.partition("_")
    return table.get((side, names[0], names[1], metric), {}).get(col)


def paper_notes(groups):
    """The notes of ``--compare-paper``: no group in the paper's table; averages over other datasets."""
    notes = []
    if not any(paper_names(g[0], g[2]) for g in groups):
        notes.append("--compare-paper: no group maps to a row of the paper table "
                     f"(known trainers {paper_trainers()}, calibrations {sorted(set(PAPER_CALIB.values()))})")
    for g, rows in groups.items():
        ds = averaged_datasets(rows)
        if paper_names(g[0], g[2]) and set(ds) != set(DATASET_ORDER):
            notes.append(f"--compare-paper: {glabel(g)}: the paper's average is taken over the same "
                         f"{len(ds)} dataset(s) as ours, not its 11-dataset Avg column")
    return notes
