"""Headless figures (matplotlib's object API on the Agg canvas: no pyplot, no backend change, no
display), written atomically: reliability diagrams and a base-vs-new summary chart.
"""
import numpy as np

from .fileio import atomic_write_with
from .metrics import reliability_bins


def _new_figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_atomic(fig, path):
    return atomic_write_with(lambda f: fig.savefig(f, format="png", bbox_inches="tight"), path)


def save_reliability_diagram(confidences, correct, path, n_bins=10, title=None):
    """Save a reliability diagram PNG at ``path`` and return it: accuracy per bin of
    :func:`reliability_bins`, the gap to the bin's mean confidence shaded, the diagonal, a lower
    panel with the share of samples per bin; the ECE (percent) in the title."""
    rb = reliability_bins(confidences, correct, n_bins)
    edges = rb["edges"]
    width = np.diff(edges)
    left = edges[:-1]
    filled = rb["counts"] > 0
    acc = np.where(filled, rb["accuracy"], 0.0)
    conf = np.where(filled, rb["mean_confidence"], 0.0)

    fig = _new_figure((4.8, 5.6))
    gs = fig.add_gridspec(2, 1, height_ratios=[3, 1], hspace=0.08)
    ax = fig.add_subplot(gs[0])
    ax.bar(left, acc, width=width, align="edge", color="#4C72B0", edgecolor="black",
           linewidth=0.6, label="accuracy")
    gap_lo = np.minimum(acc, conf)
    ax.bar(left[filled], np.abs(conf - acc)[filled], bottom=gap_lo[filled], width=width[filled],
           align="edge", color="#DD8452", alpha=0.55, edgecolor="#C44E52", linewidth=0.6, hatch="//",
           label="gap to confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1.0, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_xticklabels([])
    ax.legend(loc="upper left", fontsize=8)
    head = f"{title}\n" if title else ""
    ax.set_title(f"{head}ECE {100 * rb['ece']:.2f}%  (N = {rb['n_total']:,})", fontsize=10)

    ax2 = fig.add_subplot(gs[1])
    share = rb["counts"] / max(rb["n_total"], 1)
    ax2.bar(left, share, width=width, align="edge", color="#55A868", edgecolor="black", linewidth=0.6)
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("confidence")
    ax2.set_ylabel("share")
    return _save_atomic(fig, path)


_REQUIRED = ("label", "base_acc", "new_acc", "base_ece", "new_ece")


def save_summary_figure(rows, path, title=None):
    """Save a grouped bar chart PNG of base vs new accuracy and ECE per row and return ``path``;
    ``rows``: dicts with the keys of ``_REQUIRED`` (values as given, e.g. percent; NaN/None: no bar)."""
    rows = list(rows)
    if not rows:
        raise ValueError("calibration.plots.save_summary_figure: rows is empty")
    for i, r in enumerate(rows):
        missing = [k for k in _REQUIRED if k not in r]
        if missing:
            raise ValueError(f"calibration.plots.save_summary_figure: row {i} lacks keys {missing} "
                             f"(expected {list(_REQUIRED)})")

    def col(key):
        return np.array([np.nan if r[key] is None else float(r[key]) for r in rows])

    labels = [str(r["label"]) for r in rows]
    x = np.arange(len(rows))
    w = 0.38
    fig = _new_figure((max(5.0, 0.9 * len(rows) + 2.5), 6.0))
    axes = fig.subplots(2, 1, sharex=True)
    for ax, metric, name in ((axes[0], "acc", "accuracy"), (axes[1], "ece", "ECE")):
        base, new = col(f"base_{metric}"), col(f"new_{metric}")
        ax.bar(x - w / 2, np.nan_to_num(base), w, label="base", color="#4C72B0")
        ax.bar(x + w / 2, np.nan_to_num(new), w, label="new", color="#DD8452")
        for xs, vals in ((x - w / 2, base), (x + w / 2, new)):
            for xi, v in zip(xs, vals):
                if np.isfinite(v):
                    ax.annotate(f"{v:.1f}", (xi, v), ha="center", va="bottom", fontsize=7)
        top = np.nanmax(np.concatenate([base, new, [0.0]]))
        ax.set_ylim(0, top * 1.3 if top > 0 else 1.0)  # room for the value labels and the legend
        ax.set_ylabel(name)
        ax.legend(fontsize=8, ncol=2, loc="upper right")
    axes[1].set_xticks(x)
    axes[1].set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    if title:
        axes[0].set_title(title, fontsize=10)
    return _save_atomic(fig, path)
