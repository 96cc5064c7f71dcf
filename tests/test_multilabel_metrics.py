"""calibration.multilabel: golden values, loop references, sklearn mAP."""
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score

from cpt.calibration import metrics as M
from cpt.calibration import multilabel as ML


def test_golden_design_5_3():
    P = np.array([[0.28, 0.72], [0.92, 0.15]])
    Y = np.array([[0, 0], [1, 0]])
    out = ML.multilabel_calibration(P, Y)
    assert out["ece_positive"] == pytest.approx(0.3075, abs=1e-12)
    assert out["ece"] == pytest.approx(0.1675, abs=1e-12)
    assert out["accuracy"] == pytest.approx(0.75)
    # torch input, logits through sigmoid give the same
    logits = torch.logit(torch.tensor(P, dtype=torch.float64))
    out_t = ML.multilabel_calibration(torch.sigmoid(logits), torch.tensor(Y))
    assert out_t["ece"] == pytest.approx(0.1675, abs=1e-12)


def _random_ml(seed, n=400, c=12, unknown=0.1):
    rng = np.random.default_rng(seed)
    P = rng.random((n, c))
    Y = (rng.random((n, c)) < P * 0.6).astype(np.int64)
    P[rng.random((n, c)) < 0.01] = 0.0
    P[rng.random((n, c)) < 0.01] = 1.0
    Y[rng.random((n, c)) < unknown] = -1
    return P, Y


def _loop_pairs(P, Y):
    conf, corr, prob, tgt, cls = [], [], [], [], []
    for i in range(P.shape[0]):
        for j in range(P.shape[1]):
            if Y[i, j] == -1:
                continue
            p = P[i, j]
            pred = 1 if p >= 0.5 else 0
            conf.append(p if pred == 1 else 1 - p)
            corr.append(float(pred == Y[i, j]))
            prob.append(p)
            tgt.append(float(Y[i, j]))
            cls.append(j)
    return map(np.array, (conf, corr, prob, tgt, cls))


def test_pairwise_metrics_match_loop_decomposition():
    P, Y = _random_ml(0)
    conf, corr, prob, tgt, cls = _loop_pairs(P, Y)
    groups = {"base": [0, 1, 2, 3, 4, 5], "new": [6, 7, 8, 9, 10, 11], "odd": [1, 3, 5]}
    out = ML.multilabel_calibration(P, Y, groups=groups)
    assert list(out)[:6] == ["ece", "mce", "adaptive_ece", "ece_positive", "classwise_ece", "accuracy"]
    assert out["ece"] == pytest.approx(M.ece(conf, corr), abs=1e-12)
    assert out["mce"] == pytest.approx(M.mce(conf, corr), abs=1e-12)
    assert out["adaptive_ece"] == pytest.approx(M.adaptive_ece(conf, corr), abs=1e-12)
    assert out["ece_positive"] == pytest.approx(M.ece(prob, tgt), abs=1e-12)
    per_class = [M.ece(prob[cls == j], tgt[cls == j]) for j in range(P.shape[1])]
    assert out["classwise_ece"] == pytest.approx(np.mean(per_class), abs=1e-12)
    assert out["accuracy"] == pytest.approx(corr.mean(), abs=1e-12)
    for name, idx in groups.items():
        m = np.isin(cls, idx)
        assert out[f"ece_{name}"] == pytest.approx(M.ece(conf[m], corr[m]), abs=1e-12)
        assert out[f"accuracy_{name}"] == pytest.approx(corr[m].mean(), abs=1e-12)


def test_unknown_entries_are_dropped():
    P, Y = _random_ml(1, unknown=0.0)
    Yu = Y.copy()
    Yu[:50, :] = -1  # the first 50 images unknown everywhere
    a = ML.multilabel_calibration(P, Yu)
    b = ML.multilabel_calibration(P[50:], Y[50:])
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-12)
    assert ML.mean_average_precision(P, Yu) == pytest.approx(ML.mean_average_precision(P[50:], Y[50:]), abs=1e-12)
    assert ML.f1_scores(P, Yu) == pytest.approx(ML.f1_scores(P[50:], Y[50:]), abs=1e-12)


def test_binary_pairs_layout():
    P = np.array([[0.2, 0.9], [0.5, 0.4]])
    Y = np.array([[0, -1], [1, 1]])
    bp = ML.binary_pairs(P, Y)
    np.testing.assert_allclose(bp["confidence"], [0.8, 0.5, 0.6])
    np.testing.assert_array_equal(bp["correct"], [True, True, False])
    np.testing.assert_array_equal(bp["row_index"], [0, 1, 1])
    np.testing.assert_array_equal(bp["class_index"], [0, 0, 1])
    with pytest.raises(ValueError, match="targets must be 1"):
        ML.binary_pairs(P, np.array([[0, 2], [1, 1]]))
    with pytest.raises(ValueError, match="same shape"):
        ML.multilabel_calibration(P, Y[:1])


def _sk_map(S, Y):
    aps = []
    for j in range(S.shape[1]):
        m = Y[:, j] >= 0
        if (Y[m, j] == 1).any():
            aps.append(average_precision_score(Y[m, j], S[m, j]))
    return float(np.mean(aps))


def test_map_equals_sklearn():
    rng = np.random.default_rng(2)
    S = rng.normal(size=(700, 15))
    Y = (rng.random((700, 15)) < 0.15).astype(int)
    Y[:, 4] = 0  # a class without positives is excluded
    assert ML.mean_average_precision(S, Y) == pytest.approx(_sk_map(S, Y), abs=1e-12)
    assert np.isnan(ML.average_precision_per_class(S, Y)[4])
    # unknown entries ignored
    Yu = Y.copy()
    Yu[rng.random(Y.shape) < 0.2] = -1
    assert ML.mean_average_precision(S, Yu) == pytest.approx(_sk_map(S, Yu), abs=1e-12)
    # tied scores: the threshold rule of sklearn is reproduced as well
    St = np.round(S, 1)
    assert ML.mean_average_precision(St, Yu) == pytest.approx(_sk_map(St, Yu), abs=1e-12)
    # perfect ranking -> 1
    Yp = np.array([[1], [1], [0], [0]])
    assert ML.mean_average_precision(np.array([[0.9], [0.8], [0.3], [0.1]]), Yp) == 1.0


def test_f1_scores_reference():
    P, Y = _random_ml(3, n=300, c=9)
    Y[:, 2] = np.where(Y[:, 2] == 1, 0, Y[:, 2])  # class 2 has no positive
    cf1, of1 = ML.f1_scores(P, Y)
    cps, crs, tp_all, np_all, ng_all = [], [], 0, 0, 0
    for j in range(P.shape[1]):
        m = Y[:, j] >= 0
        pred = P[m, j] >= 0.5
        true = Y[m, j] == 1
        tp, npred, ngt = (pred & true).sum(), pred.sum(), true.sum()
        tp_all, np_all, ng_all = tp_all + tp, np_all + npred, ng_all + ngt
        if ngt == 0:
            continue
        cps.append(tp / npred if npred else 0.0)
        crs.append(tp / ngt)
    cp, cr = np.mean(cps), np.mean(crs)
    assert cf1 == pytest.approx(2 * cp * cr / (cp + cr), abs=1e-12)
    valid = Y >= 0
    sk_of1 = f1_score(Y[valid], (P[valid] >= 0.5).astype(int))
    assert of1 == pytest.approx(sk_of1, abs=1e-12)
    op, orr = tp_all / np_all, tp_all / ng_all
    assert of1 == pytest.approx(2 * op * orr / (op + orr), abs=1e-12)
