"""Framework-agnostic calibration code: metrics, multi-label metrics, plots.

Imports only torch / numpy (and matplotlib lazily, for ``plots``). Metrics
return fractions; see ``calibration.metrics`` for the exact conventions.
"""
from .metrics import (accuracy, adaptive_ece, brier, classification_metrics, classification_stats,  # noqa: F401
                      confidences_from_probs, ece, equal_width_bin_index, knn_proximity, macro_f1, mce, nll,
                      piece, quantile_bin_index, reliability_bins)
from .multilabel import (average_precision_per_class, binary_pairs, f1_scores, mean_average_precision,  # noqa: F401
                         multilabel_calibration, multilabel_metrics, signed_class_calibration)


def __getattr__(name):
    """``save_reliability_diagram`` / ``save_summary_figure`` of ``calibration.plots``, imported on use
    (matplotlib)."""
    if name in ("save_reliability_diagram", "save_summary_figure"):
        from . import plots
        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
