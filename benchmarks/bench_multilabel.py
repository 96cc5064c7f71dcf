"""Time the MultiLabelClassification evaluator's metrics against a per-pair Python loop.

    python benchmarks/bench_multilabel.py [--images 40504] [--classes 80] [--loop-images N]

A COCO-2014-val-sized test set (40,504 images x 80 classes = 3.24M image-class
pairs, long-tailed class frequencies, base/new halves as groups) with image
proximities. The vectorised side is ``calibration.multilabel.multilabel_metrics``,
the call ``MultiLabelClassification.evaluate()`` makes: mAP, CF1, OF1, ECE, MCE,
ACE, positive-class ECE, class-wise ECE, PIECE over the pairs, pair accuracy,
per-group mAP/ECE/accuracy (the kNN search that produces the proximities is not
part of either side). The loop side computes the same numbers with Python loops
over the pairs (and a sort plus a loop per class for AP). Both must agree to
1e-9. With --loop-images below --images the loop runs on the first images only
and its time is scaled linearly; the output says so.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_metrics import loop_quantile_edges  # noqa: E402  (the loops' equal-mass edges)
from cpt.calibration.multilabel import multilabel_metrics  # noqa: E402


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


def loop_metrics(probs, targets, prox, groups, n_bins=10):
    n_img, n_cls = len(probs), len(probs[0])
    edges = np.linspace(0, 1, n_bins + 1).tolist()
    group_of = {}
    for name, idx in groups.items():
        for j in idx:
            group_of.setdefault(j, []).append(name)

    def acc3(k):
        return [[0, 0.0, 0.0] for _ in range(k)]  # count, sum conf, sum correct

    ece_b, mce_b, pos_b = acc3(n_bins), acc3(n_bins), acc3(n_bins)
    cls_b = [acc3(n_bins) for _ in range(n_cls)]
    cls_n = [0] * n_cls
    grp = {g: [acc3(n_bins), 0, 0] for g in groups}  # bins, pairs, correct
    tp, npred, npos = [0] * n_cls, [0] * n_cls, [0] * n_cls
    confs, corrects, pair_prox = [], [], []
    n_pairs = n_correct = 0
    for i in range(n_img):
        row_p, row_y, px = probs[i], targets[i], prox[i]
        for j in range(n_cls):
            y = row_y[j]
            if y == -1:
                continue
            p = row_p[j]
            pred = 1 if p >= 0.5 else 0
            conf = p if pred == 1 else 1.0 - p
            ok = 1.0 if pred == y else 0.0
            n_pairs += 1
            n_correct += ok
            confs.append(conf)
            corrects.append(ok)
            pair_prox.append(px)
            b = _scan_ece_bin(conf, edges)
            if b is not None:
                cell = ece_b[b]
                cell[0] += 1
                cell[1] += conf
                cell[2] += ok
                for g in group_of.get(j, ()):
                    gc = grp[g][0][b]
                    gc[0] += 1
                    gc[1] += conf
                    gc[2] += ok
            for g in group_of.get(j, ()):
                grp[g][1] += 1
                grp[g][2] += ok
            cell = mce_b[_scan_right(conf, edges)]
            cell[0] += 1
            cell[1] += conf
            cell[2] += ok
            bp = _scan_ece_bin(p, edges)
            cls_n[j] += 1
            if bp is not None:
                for acc in (pos_b[bp], cls_b[j][bp]):
                    acc[0] += 1
                    acc[1] += p
                    acc[2] += y
            if pred == 1:
                npred[j] += 1
                if y == 1:
                    tp[j] += 1
            if y == 1:
                npos[j] += 1

    def ece_of(bins, n):
        return sum(abs(s_a - s_c) / n for cnt, s_c, s_a in bins if cnt)

    out = {}
    # mAP: per class, sort by score and walk down the ranking
    aps = []
    for j in range(n_cls):
        col = sorted(((probs[i][j], targets[i][j]) for i in range(n_img) if targets[i][j] != -1),
                     key=lambda t: -t[0])
        # walk down the ranking; tied scores form one threshold (as sklearn's AP)
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
    has = [j for j in range(n_cls) if npos[j] > 0]
    cp = sum(tp[j] / npred[j] if npred[j] else 0.0 for j in has) / len(has)
    cr = sum(tp[j] / npos[j] for j in has) / len(has)
    op = sum(tp) / sum(npred)
    orr = sum(tp) / sum(npos)
    out["cf1"] = 2 * cp * cr / (cp + cr)
    out["of1"] = 2 * op * orr / (op + orr)
    out["ece"] = ece_of(ece_b, n_pairs)
    out["mce"] = max(abs(s_a - s_c) / n_pairs for cnt, s_c, s_a in mce_b if cnt)
    ace_edges = loop_quantile_edges(confs, n_bins)
    ace_b = acc3(len(ace_edges) - 1)
    for conf, ok in zip(confs, corrects):
        cell = ace_b[_scan_right(conf, ace_edges)]
        cell[0] += 1
        cell[1] += conf
        cell[2] += ok
    out["adaptive_ece"] = ece_of(ace_b, n_pairs)
    out["ece_positive"] = ece_of(pos_b, n_pairs)
    per_class = [ece_of(cls_b[j], cls_n[j]) for j in range(n_cls) if cls_n[j]]
    out["classwise_ece"] = sum(per_class) / len(per_class)
    prox_edges = loop_quantile_edges(pair_prox, n_bins)
    cells = {}
    for conf, ok, px in zip(confs, corrects, pair_prox):
        key = (_scan_right(px, prox_edges), _scan_right(conf, edges))
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = [0, 0.0, 0.0]
        cell[0] += 1
        cell[1] += conf
        cell[2] += ok
    out["piece"] = ece_of(cells.values(), n_pairs)
    out["accuracy"] = n_correct / n_pairs
    for g, idx in groups.items():
        g_aps = [aps[j] for j in idx if aps[j] is not None]
        out[f"mAP_{g}"] = sum(g_aps) / len(g_aps)
        bins, n_g, c_g = grp[g]
        out[f"ece_{g}"] = ece_of(bins, n_g)
        out[f"accuracy_{g}"] = c_g / n_g
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

    def run_vectorised(n_img):
        # exactly what MultiLabelClassification.evaluate() computes (prox: the kNN output)
        t0 = time.perf_counter()
        res = multilabel_metrics(probs_all[:n_img], targets[:n_img], 10, groups, prox[:n_img])[0]
        return time.perf_counter() - t0, {k: 100.0 * v for k, v in res.items()}, probs_all[:n_img]

    n_pairs = args.images * args.classes
    print(f"{args.images:,} images x {args.classes} classes = {n_pairs:,} pairs, "
          f"{targets.sum() / args.images:.2f} positives per image; numpy {np.__version__}, single-threaded")
    t_vec, res_vec, probs = min((run_vectorised(args.images) for _ in range(args.repeats)), key=lambda r: r[0])

    n_loop = min(args.loop_images or args.images, args.images)
    _, res_vec_sub, probs_sub = run_vectorised(n_loop)
    t0 = time.perf_counter()
    res_loop = loop_metrics(probs_sub.tolist(), targets[:n_loop].tolist(), prox[:n_loop].tolist(), groups)
    t_loop = (time.perf_counter() - t0) * args.images / n_loop
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
