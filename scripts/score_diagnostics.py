"""What a prompt changed in a run's scores: per-image comparisons or per-class rankings.

Reads ``outputs_<split>.npz`` of runs (``TEST.SAVE_OUTPUTS True``) and prints per run: ``acc``
(top-1, single-label runs only); ``mAP``, the mean over classes of the average precision of ranking
all images by that class's score (one-vs-rest for single-label runs; -1 entries ignored); ``mAP
centred``, the same after subtracting each image's mean score over classes (any per-image common
term removed); ``img-mean std``, the standard deviation over images of that per-image mean.

Accuracy is blind to a per-image common term and sensitive to per-class offsets; mAP is the
opposite. A prompt that gains accuracy but not mAP changed class offsets (or the common term),
not how each class ranks the images. Usage::

    python scripts/score_diagnostics.py RUN_DIR [RUN_DIR ...] [--split test]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cpt.calibration.multilabel import mean_average_precision


def load_outputs(run_dir, split="test"):
    """``(scores (N, C), labels)`` of a run; a clear error when the file is missing."""
    path = os.path.join(run_dir, f"outputs_{split}.npz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not found; evaluate the run with TEST.SAVE_OUTPUTS True")
    with np.load(path) as f:
        return f["scores"].astype(np.float64), f["labels"]


def diagnostics(scores, labels):
    """Dict of ``acc`` (single-label only, %), ``map``, ``map_centred`` (%) and ``image_mean_std``.

    ``labels``: ``(N,)`` class indices (single-label) or ``(N, C)`` multi-hot with -1 unknown.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    out = {} if labels.ndim != 1 else {"acc": 100.0 * float((scores.argmax(1) == labels).mean())}
    targets = labels if labels.ndim != 1 else np.eye(scores.shape[1], dtype=np.int64)[labels]
    image_mean = scores.mean(axis=1, keepdims=True)
    out["map"] = 100.0 * mean_average_precision(scores, targets)
    out["map_centred"] = 100.0 * mean_average_precision(scores - image_mean, targets)
    out["image_mean_std"] = float(image_mean.std())
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="run output directories")
    p.add_argument("--split", default="test")
    args = p.parse_args(argv)
    print(f"{'run':<60} {'acc':>7} {'mAP':>7} {'mAP centred':>12} {'img-mean std':>13}")
    for run in args.runs:
        d = diagnostics(*load_outputs(run, args.split))
        acc = f"{d['acc']:.2f}" if "acc" in d else "-"
        print(f"{run[-60:]:<60} {acc:>7} {d['map']:>7.2f} {d['map_centred']:>12.2f} {d['image_mean_std']:>13.3f}")


if __name__ == "__main__":
    main()
