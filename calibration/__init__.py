"""Framework-agnostic calibration code (the bottom layer): metrics, multi-label metrics, training
regularizers, post-hoc calibrators, plots, and the base modules every layer uses (``registry``,
``fileio``). Imports only torch / numpy / scipy (matplotlib for ``plots``) and itself. Metrics return
fractions; see ``calibration.metrics`` for the exact conventions. The names below are imported on
first use, so ``registry`` and ``fileio`` stay light (no torch)."""
if not __name__.startswith("cpt."):  # one name per module: this folder is the package cpt.<folder>
    raise ImportError(f"import cpt.{__name__} (python -m cpt.{__name__}.<module>), not {__name__}", name=__name__)

_EXPORTS = {
    "metrics": ("accuracy", "adaptive_ece", "brier", "classification_metrics", "classification_stats",
                "confidences_from_probs", "ece", "equal_width_bin_index", "knn_proximity", "macro_f1", "mce",
                "nll", "piece", "quantile_bin_index", "reliability_bins"),
    "multilabel": ("average_precision_per_class", "binary_pairs", "f1_scores", "mean_average_precision",
                   "multilabel_calibration", "multilabel_metrics", "signed_class_calibration"),
    "plots": ("save_reliability_diagram", "save_summary_figure"),
}
_MODULE_OF = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name in _MODULE_OF:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
