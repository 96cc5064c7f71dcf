"""Time the MultiLabelClassification evaluator's metrics against a per-pair Python loop.

    python benchmarks/bench_multilabel.py [--images 40504] [--classes 80] [--loop-images N]

A COCO-2014-val-sized test set (40,504 images x 80 classes = 3.24M image-class pairs, long-tailed
class frequencies, base/new halves as groups) with image proximities. The vectorised side is the
call ``MultiLabelClassification.evaluate()`` makes, ``calibration.multilabel.multilabel_metrics``
(every metric it reports; the kNN search for the proximities is in neither side); the loop side
computes the same numbers with Python loops over the pairs (one pass per metric; a sort plus a loop
per class for AP). Both must agree to 1e-9. With --loop-images below --images the loop runs on the
first images only and its time is scaled linearly; the output says so.
"""
import argparse
import sys

import numpy as np
import torch

from bench_metrics import loop_quantile_edges  # the loops' equal-mass edges
from benchlib import best_time
from cpt.calibration.multilabel import multilabel_metrics


def make_data(n_images, n_classes, seed):
    rng = np.random.default_rng(seed)
    freq = np.clip(rng.lognormal(-3.8, 1.0, size=n_classes), 0.002, 0.5)  # long-tailed class frequencies
    targets = (rng.random((n_images, n_classes)) < freq).astype(np.int64)
    logits = np.where(targets == 1, rng.normal(1.5, 1.6, targets.shape), rng.normal(-4.0, 1.6, targets.shape))
    prox = rng.gamma(2.0, 0.3, size=n_images)
    return logits.astype(np.float32), targets, prox


# ---------------------------------------------------------------------------
# the per-pair loop
# ---------------------------------------------------------------------------
def _scan_ece_bin(c, edges):
    """(lo, hi] bins; None for c <= 0 or c > 1."""
    for b in range(len(edges) - 1):
        if c > edges[b] and c <= edges[b + 1]:
            return b
    return None


def _scan_right(c, edges):
    last = len(edges) - 2
    for b in range(last):
        if c < edges[b + 1]:
            return b
    return last


def _cells(keys, values, hits):
    """key -> [sum of values, sum of hits] over the pairs whose key is not None."""
    cells = {}
    for k, v, h in zip(keys, values, hits):
        if k is not None:
            cell = cells.setdefault(k, [0.0, 0.0])
            cell[0] += v
            cell[1] += h
    return cells


def _gap_sum(cells, n):
    return sum(abs(h - v) for v, h in cells.values()) / n


def loop_metrics(probs, targets, prox, groups, n_bins=10):
    n_img, n_cls = len(probs), len(probs[0])
    edges = np.linspace(0, 1, n_bins + 1).tolist()
    pairs = []  # (class, p, y, top-label confidence, correct, image proximity) of the valid pairs
    for i in range(n_img):
        for j in range(n_cls):
            y = targets[i][j]
            if y != -1:
                p = probs[i][j]
                pred = 1 if p >= 0.5 else 0
                pairs.append((j, p, y, p if pred == 1 else 1.0 - p, 1.0 if pred == y else 0.0, prox[i]))
    cls, ps, ys, confs, oks, pxs = (list(col) for col in zip(*pairs))
    n = len(pairs)
    out = {}
    aps = []  # AP per class: walk down the ranking; tied scores form one threshold (as sklearn's AP)
    for j in range(n_cls):
        col = sorted(((p, y) for c, p, y in zip(cls, ps, ys) if c == j), key=lambda t: -t[0])
        hits, seen, total, k = 0, 0, 0.0, 0
        while k < len(col):
            score, group_pos, group_n = col[k][0], 0, 0
            while k < len(col) and col[k][0] == score:
                group_pos += col[k][1] == 1
                group_n += 1
                k += 1
            hits += group_pos
            seen += group_n
            total += group_pos * hits / seen
        aps.append(total / hits if hits else None)
    valid_aps = [a for a in aps if a is not None]
    out["mAP"] = sum(valid_aps) / len(valid_aps)
    tp, npred, npos = [0] * n_cls, [0] * n_cls, [0] * n_cls
    for c, p, y in zip(cls, ps, ys):
        npred[c] += p >= 0.5
        tp[c] += p >= 0.5 and y == 1
        npos[c] += y == 1
    has = [j for j in range(n_cls) if npos[j] > 0]
    cp = sum(tp[j] / npred[j] if npred[j] else 0.0 for j in has) / len(has)
    cr = sum(tp[j] / npos[j] for j in has) / len(has)
    op, orr = sum(tp) / sum(npred), sum(tp) / sum(npos)
    out["cf1"] = 2 * cp * cr / (cp + cr)
    out["of1"] = 2 * op * orr / (op + orr)
    ece_keys = [_scan_ece_bin(c, edges) for c in confs]
    out["ece"] = _gap_sum(_cells(ece_keys, confs, oks), n)
    mce_cells = _cells([_scan_right(c, edges) for c in confs], confs, oks)
    out["mce"] = max(abs(h - v) for v, h in mce_cells.values()) / n
    ace_edges = loop_quantile_edges(confs, n_bins)
    out["adaptive_ece"] = _gap_sum(_cells([_scan_right(c, ace_edges) for c in confs], confs, oks), n)
    p_keys = [_scan_ece_bin(p, edges) for p in ps]
    out["ece_positive"] = _gap_sum(_cells(p_keys, ps, ys), n)
    per_class = _cells([None if b is None else (c, b) for c, b in zip(cls, p_keys)], ps, ys)
    cls_n = [0] * n_cls
    for c in cls:
        cls_n[c] += 1
    gap_c = [0.0] * n_cls
    for (c, _), (v, h) in per_class.items():
        gap_c[c] += abs(h - v)
    out["classwise_ece"] = sum(gap_c[j] / cls_n[j] for j in range(n_cls) if cls_n[j]) / sum(1 for x in cls_n if x)
    prox_edges = loop_quantile_edges(pxs, n_bins)
    piece_keys = [(_scan_right(x, prox_edges), _scan_right(c, edges)) for x, c in zip(pxs, confs)]
    out["piece"] = _gap_sum(_cells(piece_keys, confs, oks), n)
    out["accuracy"] = sum(oks) / n
    for g, idx in groups.items():
        members = set(idx)
        sel = [k for k in range(n) if cls[k] in members]
        g_aps = [aps[j] for j in idx if aps[j] is not None]
        out[f"mAP_{g}"] = sum(g_aps) / len(g_aps)
        out[f"ece_{g}"] = _gap_sum(_cells([ece_keys[k] for k in sel], [confs[k] for k in sel],
                                          [oks[k] for k in sel]), len(sel))
        out[f"accuracy_{g}"] = sum(oks[k] for k in sel) / len(sel)
    return {k: 100.0 * v for k, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=40_504)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--loop-images", type=int, default=None,
                    help="images the loop runs on (default: all); its time is then scaled linearly")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    logits, targets, prox = make_data(args.images, args.classes, args.seed)
    half = args.classes // 2
    groups = {"base": list(range(half)), "new": list(range(half, args.classes))}
    # probabilities as MultiLabelClassification.process makes them: sigmoid of the logits, float64
    probs_all = torch.sigmoid(torch.from_numpy(logits).double()).numpy()

    def vectorised(n_img):
        # exactly what MultiLabelClassification.evaluate() computes (prox: the kNN output)
        res = multilabel_metrics(probs_all[:n_img], targets[:n_img], 10, groups, prox[:n_img])[0]
        return {k: 100.0 * v for k, v in res.items()}

    n_pairs = args.images * args.classes
    print(f"{args.images:,} images x {args.classes} classes = {n_pairs:,} pairs, "
          f"{targets.sum() / args.images:.2f} positives per image; numpy {np.__version__}, single-threaded")
    t_vec, res_vec = best_time(lambda: vectorised(args.images), args.repeats)

    n_loop = min(args.loop_images or args.images, args.images)
    res_vec_sub = vectorised(n_loop)
    lists = probs_all[:n_loop].tolist(), targets[:n_loop].tolist(), prox[:n_loop].tolist()
    t_loop, res_loop = best_time(lambda: loop_metrics(*lists, groups))
    t_loop *= args.images / n_loop
    worst = max(abs(res_loop[k] - res_vec_sub[k]) for k in res_loop)
    if set(res_loop) != set(res_vec_sub) or worst > 1e-7:  # percent, i.e. 1e-9 as fractions
        diffs = {k: res_loop[k] - res_vec_sub.get(k, float("nan")) for k in res_loop}
        print(f"MISMATCH (percent): {diffs}; keys {sorted(res_loop)} vs {sorted(res_vec_sub)}")
        return 2
    print("metrics: " + ", ".join(f"{k} {v:.2f}" for k, v in res_vec.items()))
    how = "all pairs" if n_loop == args.images else f"{n_loop:,} images, scaled x{args.images / n_loop:g}"
    print(f"vectorised (multilabel_metrics, as evaluate() calls it): {t_vec:8.3f} s")
    print(f"per-pair loop ({how}):{t_loop:9.2f} s")
    print(f"ratio: {t_loop / t_vec:.0f}x   (loop and vectorised agree to 1e-9 on every metric)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
