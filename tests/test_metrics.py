"""calibration.metrics: equivalence with loop references of the TCPT conventions, golden values."""
import numpy as np
import pytest
import torch

from cpt.calibration import binning as B
from cpt.calibration import metrics as M

# ---------------------------------------------------------------------------
# Independent loop references, written from the conventions of docs/design.md 5.3
# (the TCPT evaluator's definitions, with the linear quantile rule).
# ---------------------------------------------------------------------------


def ref_ece(conf, correct, n_bins=10):
    edges = np.linspace(0, 1, n_bins + 1)
    n = len(conf)
    total = 0.0
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        members = [i for i in range(n) if conf[i] > lo and conf[i] <= hi]
        if not members:
            continue
        acc = sum(correct[i] for i in members) / len(members)
        avg = sum(conf[i] for i in members) / len(members)
        total += abs(acc - avg) * len(members) / n
    return total


def _loop_bin_right(c, edges):
    """[lo, hi) with the last bin closed: walk up while c >= next edge."""
    b = 0
    while b < len(edges) - 2 and c >= edges[b + 1]:
        b += 1
    return b


def ref_mce(conf, correct, n_bins=10, weighted=True):
    edges = np.linspace(0, 1, n_bins + 1)
    n = len(conf)
    bins = {}
    for c, a in zip(conf, correct):
        bins.setdefault(_loop_bin_right(c, edges), []).append((c, a))
    worst = 0.0
    for members in bins.values():
        acc = sum(a for _, a in members) / len(members)
        avg = sum(c for c, _ in members) / len(members)
        gap = abs(acc - avg) * (len(members) / n if weighted else 1.0)
        worst = max(worst, gap)
    return worst


def _loop_quantile_edges(x, n_bins):
    x = np.asarray(x, dtype=np.float64)
    if x.min() == x.max():
        return None
    raw = np.quantile(x, np.linspace(0, 1, n_bins + 1))
    kept = [raw[0]]
    for i in range(1, len(raw)):
        if raw[i] - raw[i - 1] > 1e-8:
            kept.append(raw[i])
    return kept


def ref_ace(conf, correct, n_bins=10):
    edges = _loop_quantile_edges(conf, n_bins)
    n = len(conf)
    bins = {}
    for c, a in zip(conf, correct):
        b = 0 if edges is None else _loop_bin_right(c, edges)
        bins.setdefault(b, []).append((c, a))
    total = 0.0
    for members in bins.values():
        acc = sum(a for _, a in members) / len(members)
        avg = sum(c for c, _ in members) / len(members)
        total += abs(acc - avg) * len(members) / n
    return total


def ref_piece(conf, correct, prox, n_bins=10, n_prox_bins=10):
    pedges = _loop_quantile_edges(prox, n_prox_bins)
    cedges = np.linspace(0, 1, n_bins + 1)
    n = len(conf)
    cells = {}
    for c, a, p in zip(conf, correct, prox):
        pb = 0 if pedges is None else _loop_bin_right(p, pedges)
        cb = _loop_bin_right(c, cedges)
        cells.setdefault((pb, cb), []).append((c, a))
    total = 0.0
    for members in cells.values():
        acc = sum(a for _, a in members) / len(members)
        avg = sum(c for c, _ in members) / len(members)
        total += abs(acc - avg) * len(members) / n
    return total


def _random_case(seed, n):
    rng = np.random.default_rng(seed)
    conf = rng.random(n) ** 0.5
    conf[rng.choice(n, size=max(1, n // 20), replace=False)] = 1.0
    conf[rng.choice(n, size=max(1, n // 40), replace=False)] = 0.0
    correct = rng.random(n) < conf
    prox = rng.gamma(2.0, 1.0, size=n)
    return conf, correct, prox


CASES = [(0, 997), (1, 1001), (2, 300), (3, 2500)]


@pytest.mark.parametrize("seed,n", CASES)
def test_metrics_match_loop_references(seed, n):
    conf, correct, prox = _random_case(seed, n)
    assert (conf == 0).any() and (conf == 1).any()
    corr = correct.astype(float)
    assert abs(M.ece(conf, correct) - ref_ece(conf, corr)) < 1e-9
    assert abs(M.mce(conf, correct) - ref_mce(conf, corr)) < 1e-9
    assert abs(M.mce(conf, correct, weighted=False) - ref_mce(conf, corr, weighted=False)) < 1e-9
    assert abs(M.adaptive_ece(conf, correct) - ref_ace(conf, corr)) < 1e-9
    assert abs(M.piece(conf, correct, prox) - ref_piece(conf, corr, prox)) < 1e-9
    # other bin counts
    assert abs(M.ece(conf, correct, 15) - ref_ece(conf, corr, 15)) < 1e-9
    assert abs(M.adaptive_ece(conf, correct, 7) - ref_ace(conf, corr, 7)) < 1e-9
    assert abs(M.piece(conf, correct, prox, 5, 4) - ref_piece(conf, corr, prox, 5, 4)) < 1e-9


def test_ace_and_piece_merge_zero_width_bins():
    rng = np.random.default_rng(7)
    conf = rng.random(500)
    conf[:200] = 1.0  # 40% ties at 1: the top quantile edges coincide
    correct = rng.random(500) < 0.8
    prox = np.round(rng.random(500), 1)  # heavy ties in the proximity too
    raw = np.quantile(conf, np.linspace(0, 1, 11))
    assert (np.diff(raw) == 0).sum() >= 3
    assert abs(M.adaptive_ece(conf, correct) - ref_ace(conf, correct.astype(float))) < 1e-9
    assert abs(M.piece(conf, correct, prox) - ref_piece(conf, correct.astype(float), prox)) < 1e-9
    # constant confidence: one bin
    c = np.full(10, 0.7)
    a = np.array([1, 1, 1, 0, 0, 1, 1, 1, 1, 1])
    assert M.adaptive_ece(c, a) == pytest.approx(0.1, abs=1e-12)


def test_ace_agrees_with_sklearn_linear_quantile_binning():
    # TCPT's AdaptiveECE used KBinsDiscretizer with the linear quantile rule;
    # without subsampling it bins like our np.quantile edges on generic data.
    from sklearn.preprocessing import KBinsDiscretizer

    rng = np.random.default_rng(11)
    conf = rng.random(3000) ** 0.3
    correct = rng.random(3000) < conf
    kb = KBinsDiscretizer(n_bins=10, encode="ordinal", strategy="quantile",
                          quantile_method="linear", subsample=None)
    idx = kb.fit_transform(conf[:, None])[:, 0].astype(int)
    ref = 0.0
    for b in np.unique(idx):
        m = idx == b
        ref += abs(correct[m].mean() - conf[m].mean()) * m.sum() / len(conf)
    assert abs(M.adaptive_ece(conf, correct) - ref) < 1e-12


def test_golden_values_design_5_3():
    conf = np.array([0.52, 0.58, 0.95, 1.0])
    correct = np.array([0, 1, 1, 0])
    assert M.ece(conf, correct) == pytest.approx(0.2625, abs=1e-12)
    assert M.mce(conf, correct, weighted=False) == pytest.approx(0.475, abs=1e-12)
    assert M.mce(conf, correct) == pytest.approx(0.2375, abs=1e-12)

    probs = np.array([[0.25, 0.20, 0.55], [0.55, 0.05, 0.40], [0.10, 0.30, 0.60], [0.90, 0.05, 0.05]])
    labels = np.array([0, 1, 2, 0])
    c, a = M.confidences_from_probs(probs, labels)
    np.testing.assert_allclose(c, [0.55, 0.55, 0.60, 0.90])
    np.testing.assert_array_equal(a, [False, False, True, True])
    assert M.ece(c, a, n_bins=3) == pytest.approx(0.2000, abs=1e-12)
    assert M.mce(c, a, n_bins=3, weighted=False) == pytest.approx(0.23333333333, abs=1e-9)
    assert M.mce(c, a, n_bins=3) == pytest.approx(0.175, abs=1e-12)


def test_zero_confidence_counts_in_n_but_no_bin():
    # ECE: c = 0 is in no bin but in N; MCE/ACE put it in the first bin.
    conf = np.array([0.0, 0.55, 0.55, 0.95])
    correct = np.array([0, 1, 0, 1])
    # bins: (0.5,0.6]: acc .5 conf .55 -> .05*2/4; (0.9,1]: .05*1/4
    assert M.ece(conf, correct) == pytest.approx(0.025 + 0.0125, abs=1e-12)
    assert M.mce(conf, correct, weighted=False) == pytest.approx(0.05, abs=1e-12)  # bin 0: |0-0|
    rb = M.reliability_bins(conf, correct)
    assert rb["n_total"] == 4 and rb["n_unbinned"] == 1 and rb["counts"].sum() == 3
    assert rb["ece"] == pytest.approx(M.ece(conf, correct), abs=1e-15)


def test_reliability_bins_content():
    conf, correct, _ = _random_case(5, 800)
    rb = M.reliability_bins(conf, correct, n_bins=10)
    np.testing.assert_allclose(rb["edges"], np.linspace(0, 1, 11))
    for b in range(10):
        lo, hi = rb["edges"][b], rb["edges"][b + 1]
        m = (conf > lo) & (conf <= hi)
        assert rb["counts"][b] == m.sum()
        if m.any():
            assert rb["accuracy"][b] == pytest.approx(correct[m].mean(), abs=1e-12)
            assert rb["mean_confidence"][b] == pytest.approx(conf[m].mean(), abs=1e-12)
        else:
            assert np.isnan(rb["accuracy"][b])
    assert rb["ece"] == pytest.approx(ref_ece(conf, correct.astype(float)), abs=1e-9)


def test_torch_and_numpy_inputs_agree():
    conf, correct, prox = _random_case(4, 600)
    t_conf = torch.tensor(conf, dtype=torch.float64)
    t_cor = torch.tensor(correct)
    t_prox = torch.tensor(prox)
    for fn in (M.ece, M.adaptive_ece, M.mce):
        v = fn(t_conf, t_cor)
        assert isinstance(v, float)
        assert v == fn(conf, correct)
    assert M.piece(t_conf, t_cor, t_prox) == M.piece(conf, correct, prox)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="ece: confidences .* differ in length"):
        M.ece(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="1-D"):
        M.mce(np.ones((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="no samples"):
        M.adaptive_ece(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="proximity"):
        M.piece(np.ones(3) * 0.5, np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="n_bins"):
        M.ece(np.ones(3) * 0.5, np.ones(3), n_bins=0)


# ---------------------------------------------------------------------------
# kNN proximity
# ---------------------------------------------------------------------------
def _brute_knn(x, k, ref=None):
    if ref is None:
        d = torch.cdist(x, x)
        d.fill_diagonal_(float("inf"))
    else:
        d = torch.cdist(x, ref)
    return d.sort(dim=1).values[:, :k].mean(dim=1)


def test_knn_proximity_matches_bruteforce():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 6, generator=g, dtype=torch.float64)
    ref = torch.randn(23, 6, generator=g, dtype=torch.float64)
    for chunk in (None, 5, 37, 1000):
        got = M.knn_proximity(x, k=4, chunk_size=chunk)
        torch.testing.assert_close(got, _brute_knn(x, 4), rtol=0, atol=1e-9)
        got_r = M.knn_proximity(x, k=3, reference=ref, chunk_size=chunk)
        torch.testing.assert_close(got_r, _brute_knn(x, 3, ref), rtol=0, atol=1e-9)
    # k = N - 1 (every other row)
    torch.testing.assert_close(M.knn_proximity(x, k=36, chunk_size=7), _brute_knn(x, 36), rtol=0, atol=1e-9)
    # normalize=True equals brute force on L2-normalised rows
    xn, rn = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(ref, dim=1)
    torch.testing.assert_close(M.knn_proximity(x, k=5, reference=ref, normalize=True, chunk_size=4),
                               _brute_knn(xn, 5, rn), rtol=0, atol=1e-9)


def test_knn_proximity_self_excluded_by_index_and_types():
    x = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    got = M.knn_proximity(x, k=1, chunk_size=2)
    assert isinstance(got, np.ndarray)
    # the duplicate row counts at distance 0; the row itself does not
    np.testing.assert_allclose(got, [0.0, 0.0, 5.0, 5.0], atol=1e-12)
    t = M.knn_proximity(torch.tensor(x, dtype=torch.float32), k=2)
    assert torch.is_tensor(t) and t.dtype == torch.float32 and t.shape == (4,)
    np.testing.assert_allclose(t.numpy(), [2.5, 2.5, 5.0, 7.5], atol=1e-5)
    half = M.knn_proximity(torch.tensor(x, dtype=torch.float16), k=1)
    assert half.dtype == torch.float32
    with pytest.raises(ValueError, match="k=4 needs 1 <= k <= 3"):
        M.knn_proximity(x, k=4)
    with pytest.raises(ValueError, match="columns"):
        M.knn_proximity(x, k=1, reference=np.zeros((3, 5)))


# ---------------------------------------------------------------------------
# proper scores, accuracy, macro-F1
# ---------------------------------------------------------------------------
def test_nll_brier_accuracy_macro_f1():
    from sklearn.metrics import f1_score, log_loss

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(200, 7)) * 2
    labels = rng.integers(0, 7, size=200)
    labels[:5] = np.arange(5)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)

    assert M.nll(logits, labels) == pytest.approx(log_loss(labels, probs, labels=range(7)), abs=1e-9)
    assert M.nll(probs, labels, from_logits=False) == pytest.approx(M.nll(logits, labels), abs=1e-9)
    per = M.nll(torch.tensor(logits), torch.tensor(labels), reduction="none")
    assert per.shape == (200,) and per.mean() == pytest.approx(M.nll(logits, labels), abs=1e-12)

    onehot = np.eye(7)[labels]
    assert M.brier(probs, labels) == pytest.approx(((probs - onehot) ** 2).sum(1).mean(), abs=1e-12)
    assert M.brier(logits, labels, from_logits=True) == pytest.approx(M.brier(probs, labels), abs=1e-12)

    pred = probs.argmax(1)
    assert M.accuracy(probs, labels) == pytest.approx((pred == labels).mean())
    assert M.accuracy(pred, labels) == M.accuracy(torch.tensor(probs), torch.tensor(labels))
    ref_f1 = f1_score(labels, pred, average="macro", labels=np.unique(labels))
    assert M.macro_f1(pred, labels) == pytest.approx(ref_f1, abs=1e-12)
    # a class that is predicted but never true does not enter the average (Dassl's choice)
    y = np.array([0, 0, 1, 1])
    p = np.array([0, 2, 1, 1])
    assert M.macro_f1(p, y) == pytest.approx(f1_score(y, p, average="macro", labels=[0, 1]), abs=1e-12)


def test_classification_stats_and_metrics_bundle():
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(300, 5)) * 3
    labels = rng.integers(0, 5, size=300)
    prox = rng.random(300)
    s = M.classification_stats(torch.tensor(logits, dtype=torch.float32), torch.tensor(labels))
    conf, correct = M.confidences_from_probs(logits, labels, from_logits=True)
    np.testing.assert_allclose(s["confidence"], conf, atol=1e-6)
    out = M.classification_metrics(s["confidence"], s["pred"], labels, s["nll"], s["brier"], proximity=prox)
    assert list(out) == ["accuracy", "error_rate", "macro_f1", "ece", "mce", "adaptive_ece", "piece",
                         "mce_max", "nll", "brier"]
    assert out["ece"] == M.ece(s["confidence"], s["pred"] == labels)
    assert out["piece"] == M.piece(s["confidence"], s["pred"] == labels, prox)
    assert out["nll"] == pytest.approx(M.nll(logits, labels), abs=1e-6)
    assert "piece" not in M.classification_metrics(s["confidence"], s["pred"], labels)


# ---------------------------------------------------------------------------
# the binning engine: grid, suspicious cells, quantile selection, blocking
# ---------------------------------------------------------------------------
def _edge_heavy_case(seed, n):
    """Confidences that sit exactly on float bin edges, at 0 and 1, and in heavy ties."""
    conf, correct, prox = _random_case(seed, n)
    rng = np.random.default_rng(seed + 100)
    specials = np.concatenate([np.linspace(0, 1, 11), np.linspace(0, 1, 16), [0.3, 0.7, 0.1, 0.5]])
    idx = rng.choice(n, size=n // 5, replace=False)
    conf[idx] = rng.choice(specials, size=idx.size)
    prox[rng.choice(n, size=n // 4, replace=False)] = 1.25  # ties in the proximity
    return conf, correct, prox


def _check_all(conf, correct, prox):
    corr = correct.astype(float)
    for nb in (10, 15, 3):
        assert abs(M.ece(conf, correct, nb) - ref_ece(conf, corr, nb)) < 1e-9
        assert abs(M.mce(conf, correct, nb) - ref_mce(conf, corr, nb)) < 1e-9
        assert abs(M.mce(conf, correct, nb, weighted=False) - ref_mce(conf, corr, nb, False)) < 1e-9
        assert abs(M.adaptive_ece(conf, correct, nb) - ref_ace(conf, corr, nb)) < 1e-9
        assert abs(M.piece(conf, correct, prox, nb, 7) - ref_piece(conf, corr, prox, nb, 7)) < 1e-9
        assert M.reliability_bins(conf, correct, nb)["ece"] == pytest.approx(ref_ece(conf, corr, nb), abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_engine_on_exact_edges_default_grid(seed):
    _check_all(*_edge_heavy_case(seed, 1500))


@pytest.mark.parametrize("grid,block", [(32, 64), (8, 7), (4096, 100)])
def test_engine_paths_with_small_grid_and_blocks(monkeypatch, grid, block):
    # coarse grids make many cells "suspicious", tiny blocks cross block boundaries,
    # _SELECT_MIN_N = 1 sends small inputs through the histogram quantile selection
    monkeypatch.setattr(B, "_G", grid)
    monkeypatch.setattr(B, "_BLOCK", block)
    monkeypatch.setattr(B, "_SELECT_MIN_N", 1)
    _check_all(*_edge_heavy_case(3, 1200))
    conf, correct, prox = _random_case(4, 999)
    _check_all(conf, correct, prox)


def test_quantile_edges_bit_for_bit(monkeypatch):
    rng = np.random.default_rng(5)
    cases = [
        rng.random(70_001),                      # (n - 1) q lands on integers
        rng.random(80_000),
        np.round(rng.random(90_000), 2),         # ties
        np.where(rng.random(70_000) < 0.4, 1.0, rng.random(70_000)),  # 40% at the maximum
        rng.integers(0, 4, 66_000).astype(float),
        rng.normal(5.0, 1e-3, 70_000),           # narrow range away from 0
    ]
    for x in cases:
        for nb in (10, 7, 15):
            np.testing.assert_array_equal(B.quantile_edges(x, nb)[0], np.quantile(x, np.linspace(0, 1, nb + 1)))
    monkeypatch.setattr(B, "_SELECT_MIN_N", 1)
    monkeypatch.setattr(B, "_G", 16)
    for _ in range(30):
        x = np.round(rng.random(int(rng.integers(2, 400))) * rng.integers(1, 50), 1)
        if x.min() == x.max():
            continue
        np.testing.assert_array_equal(B.quantile_edges(x, 10)[0], np.quantile(x, np.linspace(0, 1, 11)))


def test_large_inputs_match_references():
    # above _SELECT_MIN_N: the histogram quantile selection and several blocks are used
    conf, correct, prox = _edge_heavy_case(6, 140_000)
    corr = correct.astype(float)
    assert abs(M.adaptive_ece(conf, correct) - ref_ace(conf, corr)) < 1e-9
    assert abs(M.piece(conf, correct, prox) - ref_piece(conf, corr, prox)) < 1e-9
    assert abs(M.ece(conf, correct) - ref_ece(conf, corr)) < 1e-9
    idx, edges = M.quantile_bin_index(prox, 10)
    np.testing.assert_array_equal(idx, np.searchsorted(edges[1:-1], prox, side="right"))


def test_confidences_outside_unit_interval_and_nan():
    conf, correct, prox = _random_case(8, 700)
    conf[:7] = [-0.2, 1.3, 1.0000001, -1e-12, 2.0, 0.0, 1.0]
    _check_all(conf, correct, prox)
    conf[10] = np.nan
    for fn in (M.ece, M.mce, M.adaptive_ece):
        with pytest.raises(ValueError, match="NaN or infinite"):
            fn(conf, correct)
    with pytest.raises(ValueError, match="proximity contains NaN"):
        M.piece(np.full(5, 0.5), np.ones(5), np.array([1.0, np.inf, 0, 0, 0]))


def test_equal_width_bin_index_rules():
    conf, _, _ = _edge_heavy_case(9, 800)
    conf[:4] = [-0.5, 0.0, 1.0, 1.5]
    edges = np.linspace(0, 1, 11)
    ece_rule = M.equal_width_bin_index(conf, 10, rule="ece")
    right_rule = M.equal_width_bin_index(conf, 10, rule="right")
    for c, b_ece, b_right in zip(conf, ece_rule, right_rule):
        expect_ece = sum(1 for e in edges if e < c)  # 0: c <= 0; 1..10: (lo, hi]; 11: c > 1
        assert b_ece == expect_ece
        assert b_right == _loop_bin_right(c, edges)
    with pytest.raises(ValueError, match="rule"):
        M.equal_width_bin_index(conf, 10, rule="left")


def test_plots_write_png_atomically(tmp_path):
    import subprocess
    import sys

    code = "import sys, cpt.calibration; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path),
                         env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[1])})
    assert out.stdout.strip() == "False", out.stderr  # importing calibration does not import matplotlib
    from cpt.calibration.plots import save_reliability_diagram, save_summary_figure

    conf, correct, _ = _random_case(10, 500)
    p1 = save_reliability_diagram(conf, correct, tmp_path / "sub" / "rd.png", title="t")
    rows = [dict(label="A", base_acc=80, new_acc=70, base_ece=3, new_ece=5),
            dict(label="B", base_acc=81, new_acc=None, base_ece=2, new_ece=float("nan"))]
    p2 = save_summary_figure(rows, tmp_path / "summary.png")
    for p in (p1, p2):
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(x.name for x in (tmp_path / "sub").iterdir()) == ["rd.png"]  # no temp file left
    with pytest.raises(ValueError, match="row 0 lacks keys"):
        save_summary_figure([dict(label="A")], tmp_path / "bad.png")
