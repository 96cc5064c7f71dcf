"""Output: the long (one row per dataset), wide (datasets as columns, TCPT's) and DG tables in
md / csv / latex, the problem list, and the rows of the summary figure."""
import csv
import io

from .. import catalog
from .paper import PAPER_COLUMN, paper_names, paper_value
from .summary import averaged_datasets, dataset_sort_key, glabel

DISPLAY_NAME = {stem: name for stem, _, name in catalog.DATASETS}
DISPLAY_NAME["average"] = "Average"
METRIC_LABEL = {"acc": "Acc", "ece": "ECE", "mce": "MCE", "ace": "ACE", "piece": "PIECE", "map": "mAP",
                "cf1": "CF1", "of1": "OF1", "ece_head": "ECE head", "ece_medium": "ECE medium",
                "ece_tail": "ECE tail", "ece_positive": "ECE+", "classwise_ece": "cwECE"}


def value_columns(metrics, primary="acc"):
    cols = [f"base_{metrics[0]}", f"new_{metrics[0]}", "hm"] if metrics[0] == primary else []
    cols += [f"{side}_{m}" for m in metrics if m != primary for side in ("base", "new")]
    return cols if primary in metrics else [c for c in cols if c != "hm"]


def column_label(col):
    side, _, m = col.partition("_")
    return "HM" if col == "hm" else f"{side.capitalize()} {METRIC_LABEL.get(m, m)}"


def _fmt(v, digits=2):
    return "" if v is None else f"{v:.{digits}f}"


def _cell(row, col, std, fmt):
    """``mean ± std`` (latex: a small ``$\\pm$`` std), ``-`` when there is no value."""
    v, sd = row.get(col), row.get(col + "_std")
    if v is None or not std or sd is None:
        return "-" if v is None else _fmt(v)
    return _fmt(v) + (f" ± {_fmt(sd)}" if fmt == "md" else f" {{\\scriptsize$\\pm${_fmt(sd)}}}")


def _latex_escape(s):
    return str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def table_lines(title, header, body, fmt, n_text):
    """One md or latex table; the first ``n_text`` columns are text (left-aligned, escaped), an
    ``Average`` row is set off (bold / a rule)."""
    if fmt == "md":
        out = [f"### {title}\n", "| " + " | ".join(header) + " |",
               "|" + "|".join(["---"] * n_text + ["---:"] * (len(header) - n_text)) + "|"]
        for rec in body:
            if rec[0] == "Average":
                rec = [f"**{x}**" if x not in ("", "-") else x for x in rec]
            out.append("| " + " | ".join(rec) + " |")
        return out + [""]
    out = ["% " + title, r"\begin{tabular}{" + "l" * n_text + "r" * (len(header) - n_text) + "}", r"\toprule",
           " & ".join(_latex_escape(h) for h in header) + r" \\", r"\midrule"]
    for rec in body:
        if rec[0] == "Average":
            out.append(r"\midrule")
        out.append(" & ".join([_latex_escape(x) for x in rec[:n_text]] + rec[n_text:]) + r" \\")
    return out + [r"\bottomrule", r"\end{tabular}", ""]


def _csv(header, records):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(records)
    return out.getvalue()


def _group_cells(gkey):
    return [gkey[0], gkey[1], gkey[2], "" if gkey[3] is None else gkey[3]]


def _dataset_label(row):
    """The display name, and a row's configuration label when its dataset has several."""
    name = DISPLAY_NAME.get(row["dataset"], row["dataset"])
    return f"{name} ({row['variant']})" if row.get("variant") else name


def _variant_column(rows):
    """``["variant"]`` when some row is one configuration of several (else no column)."""
    return ["variant"] if any(r.get("variant") for r in rows) else []


def format_csv(groups, metrics, std=True, paper=None, primary="acc"):
    cols, show_group = value_columns(metrics, primary), len(groups) > 1
    variant = _variant_column([row for rows in groups.values() for row in rows])
    header = ["dataset"] + (["trainer", "config", "calibration", "shots"] if show_group else [])
    for c in cols:
        header += [c] + ([c + "_std"] if c != "hm" and std else []) + (["paper_" + c] if paper is not None else [])
    records = []
    for gkey, rows in groups.items():
        for row in rows:
            rec = [row["dataset"]] + (_group_cells(gkey) if show_group else [])
            for c in cols:
                pv = paper_value(paper, gkey, row["dataset"], c, averaged_datasets(rows)) if paper is not None else None
                rec += [_fmt(row.get(c), 4)] + ([_fmt(row.get(c + "_std"), 4)] if c != "hm" and std else []) + (
                    [_fmt(pv, 2)] if paper is not None else [])
            records.append(rec + ["" if row.get(k) is None else row[k] for k in ("n_seeds", "n_base", "n_new")]
                           + [row.get("variant", "")] * len(variant))
    return _csv(header + ["n_seeds", "n_base", "n_new"] + variant, records)


def format_long(groups, metrics, fmt="md", std=True, paper=None, primary="acc"):
    """One table per group, one row per dataset plus the average (CoCoOp/TCPT style)."""
    cols = value_columns(metrics, primary)
    header = ["Dataset"] + [h for c in cols for h in [column_label(c)] + (["paper"] if paper is not None else [])]
    out = []
    for gkey, rows in groups.items():
        body = []
        for row in rows:
            rec = [_dataset_label(row)]
            for c in cols:
                rec.append(_cell(row, c, std, fmt))
                if paper is not None:
                    p = paper_value(paper, gkey, row["dataset"], c, averaged_datasets(rows))
                    rec.append("-" if p is None else _fmt(p))
            nb, nn = row["n_base"], row["n_new"]
            rec.append("" if row["dataset"] == "average" else str(nb) if nb == nn else f"{nb}/{nn}")
            body.append(rec)
        title = f"{gkey[0]} ({gkey[1]}), calibration: {gkey[2]}, {gkey[3]} shots"
        out += table_lines(title, header + ["Seeds"], body, fmt, 1)
    return "\n".join(out)


def format_wide(groups, metrics, fmt="md", paper=None, primary="acc"):
    """TCPT's layout: per side a table with datasets as columns and (method, metric) as rows."""
    all_ds = sorted(dict.fromkeys((row["dataset"], row.get("variant")) for rows in groups.values() for row in rows
                                  if row["dataset"] != "average"), key=lambda dv: dataset_sort_key(dv[0]))
    all_ds += [("average", None)]
    header = ["Method", "Calibration", "Metric"] + [PAPER_COLUMN.get(d, d) + (f" ({v})" if v else "")
                                                    for d, v in all_ds]
    sections = [("base", list(metrics)), ("new", list(metrics))] + ([("hm", [primary])] if primary in metrics else [])
    out = []
    for side, ms in sections:
        body = []
        for gkey, rows in groups.items():
            byds = {(row["dataset"], row.get("variant")): row for row in rows}
            for m in ms:
                col = "hm" if side == "hm" else f"{side}_{m}"
                label = [f"{gkey[0]} ({gkey[1]})", str(gkey[2]), "HM" if side == "hm" else METRIC_LABEL.get(m, m)]
                body.append(label + [_fmt(byds[d][col]) if byds.get(d, {}).get(col) is not None else "-"
                                     for d in all_ds])
                if paper is not None and paper_names(gkey[0], gkey[2]) is not None:
                    vals = [paper_value(paper, gkey, d, col, averaged_datasets(rows)) for d, _ in all_ds]
                    body.append(["  paper", "", ""] + ["-" if v is None else _fmt(v) for v in vals])
        title = {"base": "Base classes", "new": "New classes", "hm": "Harmonic mean"}[side]
        out += table_lines(title, header, body, fmt, 3)
    return "\n".join(out)


def format_dg(groups, columns, fmt="md", std=True):
    """The domain-generalisation table: a row per group, a column per (dataset, metric)."""
    if fmt == "csv":
        cols = [f"{ds}_{m}{s}" for ds, _, m in columns for s in (("", "_std") if std else ("",))]
        variant = _variant_column(groups.values())
        records = [_group_cells(gkey) + [_fmt(row.get(c), 4) for c in cols] + [row.get("variant", "")] * len(variant)
                   for gkey, row in groups.items()]
        return _csv(["trainer", "config", "calibration", "shots"] + cols + variant, records)
    header = ["Method", "Calibration"] + [f"{DISPLAY_NAME.get(ds, ds)}{' (source)' if side == 'source' else ''} "
                                          f"{METRIC_LABEL.get(m, m)}" for ds, side, m in columns]
    body = [[f"{gkey[0]} ({gkey[1]})" + (f" [{row['variant']}]" if row.get("variant") else ""), str(gkey[2])]
            + [_cell(row, f"{ds}_{m}", std, fmt) for ds, _, m in columns] for gkey, row in groups.items()]
    return "\n".join(table_lines("Domain generalisation", header, body, fmt, 2))


def format_problems(problems, notes, fmt="md"):
    lines = []
    if problems:
        lines.append(f"Missing or failed runs ({len(problems)}), not averaged:")
        for p in problems:
            first = p.error.strip().splitlines()[0] if p.error.strip() else ""
            first = first[:197] + "..." if len(first) > 200 else first
            lines.append(f"- {glabel(p.group)} {p.dataset} {p.side} seed{p.seed}: {p.status}"
                         f"{' ' + p.path if p.path else ''}{': ' + first if first else ''}")
    if notes:
        lines += ["Notes:"] + [f"- {n}" for n in notes]
    if not lines:
        return ""
    prefix = {"latex": "% ", "csv": "# "}.get(fmt, "")
    return "\n".join(prefix + x for x in lines) + "\n"


def summary_rows(groups):
    """Rows for ``calibration.plots.save_summary_figure``: one per group, the average row."""
    rows = []
    for gkey, grows in groups.items():
        label = gkey[0] if gkey[2] == "none" else f"{gkey[0]}+{gkey[2]}"
        if sum(1 for k in groups if k[0] == gkey[0] and k[2] == gkey[2]) > 1:
            label += f" ({gkey[1]})"
        rows.append({"label": label, **{k: grows[-1].get(k) for k in ("base_acc", "new_acc", "base_ece", "new_ece")}})
    return rows
