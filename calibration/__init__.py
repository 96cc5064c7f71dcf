"""Framework-agnostic calibration code: metrics, multi-label metrics, plots.

Imports only torch / numpy (and matplotlib lazily, for ``plots``). Metrics
return fractions; see ``calibration.metrics`` for the exact conventions.
"""
from .metrics import (
    accuracy,
    adaptive_ece,
    brier,
    classification_metrics,
    classification_stats,
    confidences_from_probs,
    ece,
    equal_width_bin_index,
    knn_proximity,
    macro_f1,
    mce,
    nll,
    piece,
    quantile_bin_index,
    reliability_bins,
)
from .multilabel import (
    average_precision_per_class,
    binary_pairs,
    f1_scores,
    mean_average_precision,
    multilabel_calibration,
    multilabel_metrics,
)


def save_reliability_diagram(*args, **kwargs):
    """Lazy wrapper of ``calibration.plots.save_reliability_diagram`` (imports matplotlib on use)."""
    from .plots import save_reliability_diagram as _f

    return _f(*args, **kwargs)


def save_summary_figure(*args, **kwargs):
    """Lazy wrapper of ``calibration.plots.save_summary_figure`` (imports matplotlib on use)."""
    from .plots import save_summary_figure as _f

    return _f(*args, **kwargs)
