"""Tests of calibration/regularizers.py (DESIGN.md section 5.1)."""
import glob
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from cpt.calibration.regularizers import (
    DEFAULT_VOCAB_PATH,
    REGULARIZERS,
    RegContext,
    apply_regularizers,
    build_regularizers,
    ccr_loss,
    check_requirements,
    dor_loss,
    get_regularizer,
    load_outlier_vocab,
    logit_range_penalty,
    margin_mean_var,
    mbls_loss,
    select_outliers,
    text_moment_matching,
    zs_norm_logits,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- golden values

GOLD_LOGITS = torch.tensor([[2.0, 1, 0], [0, 3, 1], [1, 1, 4]])
GOLD_LABELS = torch.tensor([0, 1, 0])


def test_tcpt_margin_golden():
    assert margin_mean_var(GOLD_LOGITS, GOLD_LABELS).item() == pytest.approx(0.046667, abs=1e-6)
    # the margins themselves: a batch of one with alpha=1, beta=0 gives -m_i
    margins = [-margin_mean_var(GOLD_LOGITS[i:i + 1], GOLD_LABELS[i:i + 1], 1.0, 0.0).item()
               for i in range(3)]
    assert margins == [1.0, 2.0, -3.0]
    # biased variance of [1, 2, -3] is 14/3, the mean is 0
    assert margin_mean_var(GOLD_LOGITS, GOLD_LABELS, 0.0, 1.0).item() == pytest.approx(14 / 3)
    assert margin_mean_var(GOLD_LOGITS, GOLD_LABELS, 1.0, 0.0).item() == pytest.approx(0.0, abs=1e-7)


def test_tcpt_moments_golden_and_normalisation():
    t = torch.eye(2)
    t0 = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    assert text_moment_matching(t, t0).item() == pytest.approx(0.3104, abs=1e-6)
    # features are L2-normalised inside
    assert text_moment_matching(3 * t, 0.5 * t0).item() == pytest.approx(0.3104, abs=1e-6)
    assert text_moment_matching(t0, t0).item() == pytest.approx(0.0, abs=1e-7)


def test_zs_norm_golden():
    z = torch.tensor([[4.0, 2, 0]])
    zs = torch.tensor([[30.0, 25, 20]])
    zn = zs_norm_logits(z, zs)
    assert torch.allclose(zn, zs)
    ce = F.cross_entropy(zn, torch.tensor([0]))
    assert ce.item() == pytest.approx(0.0067604, abs=1e-7)
    reg = get_regularizer("zs_norm")()
    ctx = RegContext(logits=z, labels=torch.tensor([0]), zs_logits=zs)
    assert reg.task_loss(ctx).item() == pytest.approx(0.0067604, abs=1e-7)
    # a constant row maps to the zero-shot minimum without NaN
    assert torch.equal(zs_norm_logits(torch.ones(1, 3), zs), torch.full((1, 3), 20.0))


def test_penalty_golden():
    z = torch.tensor([[35.0, 22, 10]])
    zs = torch.tensor([[30.0, 25, 20]])
    assert logit_range_penalty(z, zs, weight=1.0).item() == pytest.approx(5.0)
    assert logit_range_penalty(z, zs).item() == pytest.approx(50.0)


def test_mbls_and_dor_values():
    z = torch.tensor([[20.0, 5.0, 12.0]])
    # relu(20-20-10)=0, relu(20-5-10)=5, relu(20-12-10)=0 -> mean 5/3, times 0.1
    assert mbls_loss(z).item() == pytest.approx(0.1 * 5 / 3)
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert dor_loss(a, a).item() == pytest.approx(0.0, abs=1e-7)
    b = torch.tensor([[0.0, 1.0], [0.0, 5.0]])
    assert dor_loss(a, b).item() == pytest.approx(0.5)  # cos 0 and 1
    assert dor_loss(torch.zeros(0, 4), torch.zeros(0, 4)).item() == 0.0


# ---------------------------------------------------------------- gradcheck

def _dbl(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()


def test_gradcheck_margin_mean_var():
    z = _dbl(5, 4, seed=1, scale=3.0)
    y = torch.tensor([0, 3, 1, 2, 1])
    assert gradcheck(lambda a: margin_mean_var(a, y, 0.3, 0.05), (z,))


def test_gradcheck_text_moment_matching():
    t, t0 = _dbl(4, 3, seed=2), _dbl(4, 3, seed=3)
    assert gradcheck(text_moment_matching, (t, t0))


def test_gradcheck_mbls():
    z = _dbl(4, 5, seed=4, scale=8.0)
    with torch.no_grad():
        gap = z.max(1, keepdim=True).values - z - 2.0
        assert gap.abs().min() > 1e-3  # away from the relu kink
    assert gradcheck(lambda a: mbls_loss(a, margin=2.0, alpha=0.5), (z,))


def test_gradcheck_zs_norm_and_penalty():
    z, zs = _dbl(3, 4, seed=5, scale=3.0), _dbl(3, 4, seed=6, scale=3.0)
    assert gradcheck(zs_norm_logits, (z, zs))
    assert gradcheck(lambda a, b: F.cross_entropy(zs_norm_logits(a, b), torch.tensor([0, 2, 3])), (z, zs))
    assert gradcheck(lambda a, b: logit_range_penalty(a, b, 2.0), (z, zs))


def test_gradcheck_dor():
    assert gradcheck(dor_loss, (_dbl(5, 3, seed=7), _dbl(5, 3, seed=8)))


def test_gradcheck_ccr():
    g = torch.Generator().manual_seed(9)
    p = torch.rand(8, 4, generator=g, dtype=torch.float64).requires_grad_()
    t = (torch.rand(8, 4, generator=g) < 0.3).long()
    t[0, 1] = -1
    t[5, 2] = -1
    s = torch.rand(4, 4, generator=g, dtype=torch.float64)
    s = (s + s.t()) / 2
    s.fill_diagonal_(1.0)
    assert gradcheck(lambda a: ccr_loss(a, t, s), (p,))
    s.requires_grad_()
    assert gradcheck(lambda a, b: ccr_loss(a, t, b), (p, s))


# ---------------------------------------------------------------- CCR estimator

def ref_ccr(p, t, s, rel_tol=1e-5):
    """Loop reference of DESIGN.md 5.1's estimator; returns (loss, corr, defined)."""
    p, t, s = np.asarray(p, float), np.asarray(t), np.asarray(s, float)
    c = p.shape[1]
    corr = np.full((c, c), np.nan)
    loss = 0.0
    for i in range(c):
        for j in range(c):
            if i == j:
                corr[i, j] = 1.0
            else:
                mask = (t[:, i] == 0) & (t[:, j] == 0)
                if mask.sum() < 2:
                    continue
                a, b = p[mask, i], p[mask, j]
                va, vb = a.var(), b.var()
                if va <= rel_tol ** 2 * np.mean(a * a) or vb <= rel_tol ** 2 * np.mean(b * b):
                    continue
                corr[i, j] = np.mean((a - a.mean()) * (b - b.mean())) / math.sqrt(va * vb)
            loss += (corr[i, j] - s[i, j]) ** 2
    return loss, corr, ~np.isnan(corr)


def _ml_batch(n=12, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, c, generator=g)
    t = (torch.rand(n, c, generator=g) < 0.3).long()
    t[torch.rand(n, c, generator=g) < 0.1] = -1
    s = torch.rand(c, c, generator=g) * 2 - 1
    s = (s + s.t()) / 2
    s.fill_diagonal_(1.0)
    return p, t, s


def test_ccr_matches_loop_reference():
    for seed in range(4):
        p, t, s = _ml_batch(seed=seed)
        ref, _, defined = ref_ccr(p.double(), t, s.double())
        got, n = ccr_loss(p, t, s, return_count=True)
        assert got.dtype == torch.float32
        assert got.item() == pytest.approx(ref, rel=1e-5)
        assert n == int(defined.sum())


def test_ccr_zero_when_corr_equals_text_similarity():
    p, t, s = _ml_batch(n=16, c=6, seed=3)
    t[:, 4] = 1  # class 4 never inactive -> its pairs undefined
    p[:, 5] = 0.25  # class 5 constant -> undefined
    _, corr, defined = ref_ccr(p.double(), t, s.double())
    target = np.where(defined, corr, 7.0)  # junk on the entries it must not use
    loss, n = ccr_loss(p.double(), t, torch.from_numpy(target), return_count=True)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    assert n == int(defined.sum()) < 36
    # a perfectly linear pair has correlation 1
    p1 = torch.rand(10, 1, dtype=torch.float64)
    p2 = torch.cat([p1, 0.5 * p1 + 0.1, 1 - p1], dim=1)
    s2 = torch.tensor([[1.0, 1, -1], [1, 1, -1], [-1, -1, 1]], dtype=torch.float64)
    assert ccr_loss(p2, torch.zeros(10, 3), s2).item() == pytest.approx(0.0, abs=1e-12)


def _finite_with_grad(p, t, s):
    p = p.clone().requires_grad_()
    loss, n = ccr_loss(p, t, s, return_count=True)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(p.grad).all()
    return loss, n, p.grad


def test_ccr_degenerate_batches_are_finite():
    p, t, s = _ml_batch(n=10, c=5, seed=1)
    # constant-probability column (float32, value not exactly representable)
    pc = p.clone()
    pc[:, 2] = 0.3
    _, _, grad = _finite_with_grad(pc, t, s)
    assert torch.all(grad[:, 2] == 0)  # no gradient through undefined pairs
    # constant up to 1e-8 relative noise counts as constant (rel_tol 1e-5)
    pn = p.double().clone()
    pn[:, 4] = 0.3 * (1 + 1e-8 * torch.randn(10, dtype=torch.float64))
    _, _, grad = _finite_with_grad(pn, t, s.double())
    assert torch.all(grad[:, 4] == 0)
    # column constant on its inactive samples only
    pc2 = p.clone()
    pc2[t[:, 3] == 0, 3] = 0.7
    _, _, grad = _finite_with_grad(pc2, t, s)
    assert torch.all(grad[:, 3] == 0)
    # all-positive and all-unknown columns: no inactive sample
    for fill in (1, -1):
        tp = t.clone()
        tp[:, 1] = fill
        _, _, grad = _finite_with_grad(p, tp, s)
        assert torch.all(grad[:, 1] == 0)
    # all-negative column (all inactive) is fine and matches the reference
    tn = t.clone()
    tn[:, 0] = 0
    loss, _, _ = _finite_with_grad(p, tn, s)
    assert loss.item() == pytest.approx(ref_ccr(p.double(), tn, s.double())[0], rel=1e-5)
    # everything negative, everything positive, a batch of one, exact zeros
    for pp, tt in [(p, torch.zeros_like(t)), (p, torch.ones_like(t)), (p[:1], t[:1] * 0),
                   (torch.zeros_like(p), torch.zeros_like(t))]:
        loss, n, _ = _finite_with_grad(pp, tt, s)
        if tt.max() == 1 or pp.shape[0] == 1 or pp.abs().max() == 0:
            assert n == 5 and loss.item() == pytest.approx(0.0, abs=1e-12)  # only the diagonal
    # the diagonal compares with S's diagonal
    s_bad = s.clone()
    s_bad.fill_diagonal_(0.5)
    assert ccr_loss(p[:1], t[:1], s_bad).item() == pytest.approx(5 * 0.25)


def test_ccr_gradient_reaches_parameters():
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 4)
    x = torch.randn(16, 6)
    t = (torch.rand(16, 4) < 0.25).long()
    t[3, 0] = -1
    s = torch.eye(4) * 0.5 + 0.5
    loss = ccr_loss(torch.sigmoid(layer(x)), t, s)
    loss.backward()
    assert loss.item() > 0
    assert torch.isfinite(layer.weight.grad).all() and layer.weight.grad.abs().sum() > 0
    assert layer.bias.grad.abs().sum() > 0


def test_ccr_regularizer_reduction():
    p, t, s = _ml_batch(seed=2)
    raw, n = ccr_loss(p, t, s, return_count=True)
    ctx = RegContext(probs=p, targets=t, text_similarity=s)
    mean_reg = build_regularizers(["ccr"], {"CCR": {"LAMBDA": 2.0}})[0]
    sum_reg = build_regularizers(["ccr"], {"ccr": {"lambda": 2.0, "reduction": "sum"}})[0]
    assert mean_reg(ctx).item() == pytest.approx(2.0 * raw.item() / n)
    assert sum_reg(ctx).item() == pytest.approx(2.0 * raw.item())
    assert mean_reg.last_stats["ccr_defined"] == n
    with pytest.raises(ValueError, match="REDUCTION"):
        build_regularizers(["ccr"], {"ccr": {"reduction": "max"}})


# ---------------------------------------------------------------- registry and interface

def test_registry_names_and_miss():
    assert set(REGULARIZERS) == {"tcpt", "ccr", "mbls", "zs_norm", "penalty", "dor"}
    with pytest.raises(KeyError, match="tcpt"):
        get_regularizer("tcp")
    with pytest.raises(KeyError, match="zs_norm"):
        build_regularizers(["zsnorm"], {})
    with pytest.raises(KeyError, match="alpha"):
        build_regularizers(["tcpt"], {"tcpt": {"alpah": 0.2}})
    with pytest.raises(ValueError, match="twice"):
        build_regularizers(["mbls", "MBLS"], {})


def test_defaults():
    regs = {r.name: r for r in build_regularizers(list(REGULARIZERS), {})}
    assert regs["tcpt"].params == {"alpha": 0.1, "beta": 0.01, "lambda": 5.0}
    assert regs["ccr"].params == {"lambda": 1.0, "reduction": "mean"}
    assert regs["mbls"].params == {"margin": 10.0, "alpha": 0.1}
    assert regs["penalty"].params["weight"] == 10.0
    assert regs["dor"].params["lambda"] == 2.0
    assert regs["zs_norm"].replaces_task_loss


def test_check_requirements_message():
    regs = build_regularizers(["tcpt", "ccr"], {})
    check_requirements(regs[:1], {"logits", "labels", "text_features", "zs_text_features"}, "CoOp")
    with pytest.raises(ValueError) as err:
        check_requirements(regs, {"logits", "labels"}, "CoCoOp")
    msg = str(err.value)
    assert "CoCoOp" in msg and "'tcpt'" in msg and "'ccr'" in msg
    assert "text_features" in msg and "text_similarity" in msg
    # a missing field at call time names the regularizer too
    with pytest.raises(ValueError, match="'penalty'.*zs_logits"):
        build_regularizers(["penalty"], {})[0](RegContext(logits=torch.zeros(2, 3)))


def test_apply_regularizers_sum_and_logs():
    torch.manual_seed(1)
    logits = (5 * torch.randn(6, 4)).requires_grad_()
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    tf, zs_tf = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8)
    zs_logits = 5 * torch.randn(6, 4)
    ctx = RegContext(logits=logits, labels=labels, text_features=tf, zs_text_features=zs_tf,
                     zs_logits=zs_logits)
    regs = build_regularizers(["tcpt", "mbls", "penalty"], {"TCPT": {"LAMBDA": 2.0}})
    ce = F.cross_entropy(logits, labels)
    total, logs = apply_regularizers(regs, ctx, ce)
    expect = (ce + margin_mean_var(logits, labels) + 2.0 * text_moment_matching(tf, zs_tf)
              + mbls_loss(logits) + logit_range_penalty(logits, zs_logits))
    assert total.item() == pytest.approx(expect.item(), rel=1e-6)
    assert set(logs) == {"loss", "loss_task", "tcpt_margin", "tcpt_moment", "mbls", "penalty"}
    assert logs["loss"] == pytest.approx(total.item())
    total.backward()
    assert tf.grad.abs().sum() > 0
    # ZS-Norm replaces the task loss
    total2, logs2 = apply_regularizers(build_regularizers(["zs_norm"], {}), ctx, ce)
    assert total2.item() == pytest.approx(
        F.cross_entropy(zs_norm_logits(logits, zs_logits), labels).item())
    assert logs2["loss_task"] == pytest.approx(total2.item())
    off = build_regularizers(["zs_norm"], {"ZS_NORM": {"ENABLED": False}})
    assert apply_regularizers(off, ctx, ce)[0].item() == pytest.approx(ce.item())


def test_presets_merge_and_build():
    from cpt.engine.config import get_cfg_default

    files = sorted(glob.glob(os.path.join(REPO, "configs", "calibration", "*.yaml")))
    names = {os.path.splitext(os.path.basename(f))[0] for f in files}
    assert names >= {"tcpt", "ccr", "mbls", "zs_norm", "penalty", "dor", "dor_coop",
                     "temperature", "dac", "sals"}
    from cpt.calibration.posthoc import build_posthoc

    for f in files:
        cfg = get_cfg_default()
        cfg.merge_from_file(f)  # yacs rejects keys that do not exist
        regs = build_regularizers(list(cfg.CALIB.METHOD), cfg.CALIB)
        build_posthoc(cfg.CALIB.POSTHOC)
        assert cfg.CALIB.NAME
        if cfg.CALIB.METHOD:
            assert [r.name for r in regs] == list(cfg.CALIB.METHOD)
        stem = os.path.splitext(os.path.basename(f))[0]
        if stem == "dor_coop":
            assert regs[0].params["lambda"] == 8.0
        if stem == "tcpt":
            assert regs[0].params == {"alpha": 0.1, "beta": 0.01, "lambda": 5.0}


# ---------------------------------------------------------------- DOR vocabulary

def test_outlier_vocab():
    words = load_outlier_vocab()
    assert len(words) >= 300
    assert len({w.lower() for w in words}) == len(words)
    assert all(w == w.strip() and w and not w.startswith("#") for w in words)
    assert "dog" in words and "hot dog" in words
    kept = load_outlier_vocab(DEFAULT_VOCAB_PATH, exclude=["Dog", "hot_dog", "Traffic  Light"])
    assert "dog" not in kept and "hot dog" not in kept and len(kept) == len(words) - 2
    with pytest.raises(FileNotFoundError, match="CALIB.DOR.VOCAB"):
        load_outlier_vocab("/nonexistent/vocab.txt")


def test_select_outliers():
    cls = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    vocab = torch.tensor([[0, 0, 1.0], [0.9, 0.1, 0], [0.5, 0.5, 0.1], [0, 0.8, 0.6], [-1.0, 0, 0]])
    assert select_outliers(vocab, cls, 2).tolist() == [1, 3]  # max cosine
    assert select_outliers(vocab, cls, 2, reduction="mean").tolist() == [2, 1]
    assert select_outliers(vocab, cls, 99).numel() == 5
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a = select_outliers(vocab, cls, 2, pool=4, generator=g1)
    b = select_outliers(vocab, cls, 2, pool=4, generator=g2)
    assert a.tolist() == b.tolist() and set(a.tolist()) <= {1, 3, 2, 0} and len(set(a.tolist())) == 2
