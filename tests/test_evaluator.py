"""engine.evaluation: registry, key order, percent scaling, printed block, PIECE pools."""
import io
import logging
import re

import numpy as np
import pytest
import torch

from cpt.calibration import metrics as M
from cpt.calibration import multilabel as ML
from cpt.engine.config import get_cfg_default
from cpt.engine.evaluation import (
    EVALUATOR_REGISTRY,
    Classification,
    EvaluatorBase,
    MultiLabelClassification,
    build_evaluator,
)


@pytest.fixture
def block(monkeypatch):
    """What the evaluators print: a run-logger handler writing to a buffer."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(message)s"))
    run_logger = logging.getLogger("cpt")
    monkeypatch.setattr(run_logger, "handlers", [handler])
    monkeypatch.setattr(run_logger, "propagate", False)
    monkeypatch.setattr(run_logger, "level", logging.INFO)
    return buf


def test_block_is_printed_without_a_configured_logger(capsys, monkeypatch):
    monkeypatch.setattr(logging.getLogger("cpt"), "handlers", [])
    ev = Classification(get_cfg_default())
    ev.process(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    ev.evaluate()
    assert capsys.readouterr().out.startswith("=> result\n* total: 2\n* correct: 1\n* accuracy: 50.00%\n")


def test_result_block_goes_through_the_run_logger(tmp_path, monkeypatch):
    monkeypatch.setattr(logging.getLogger("cpt"), "handlers", [])
    from cpt.engine.utils import setup_logger

    logger = setup_logger(str(tmp_path))
    try:
        ev = Classification(get_cfg_default())
        ev.process(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
        ev.evaluate()
        log = (tmp_path / "log.txt").read_text()
        assert "=> result\n* total: 2\n* correct: 1\n* accuracy: 50.00%" in log
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
            h.close()


SINGLE_KEYS = ["accuracy", "error_rate", "macro_f1", "ece", "mce", "adaptive_ece", "piece",
               "mce_max", "nll", "brier"]


def _batches(seed=0, n_batches=4, bs=50, c=6, d=16):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        labels = torch.randint(0, c, (bs,), generator=g)
        logits = torch.randn(bs, c, generator=g) * 2
        logits[torch.arange(bs), labels] += 1.5
        feats = torch.randn(bs, d, generator=g)
        out.append((logits, labels, feats))
    return out


def _concat(batches):
    return [torch.cat(x) for x in zip(*batches)]


def test_registry_and_build():
    cfg = get_cfg_default()
    assert cfg.TEST.EVALUATOR == "Classification"
    assert isinstance(build_evaluator(cfg, lab2cname={0: "a"}), Classification)
    assert set(EVALUATOR_REGISTRY.registered_names()) >= {"Classification", "MultiLabelClassification"}
    cfg.TEST.EVALUATOR = "MultiLabelClassification"
    assert isinstance(build_evaluator(cfg, groups={"base": [0]}), MultiLabelClassification)
    cfg.TEST.EVALUATOR = "Clasification"
    with pytest.raises(KeyError, match="closest: Classification"):
        build_evaluator(cfg)
    with pytest.raises(NotImplementedError):
        EvaluatorBase(cfg).evaluate()


def test_classification_keys_percent_and_printout(block):
    cfg = get_cfg_default()
    ev = build_evaluator(cfg)
    batches = _batches()
    for logits, labels, feats in batches:
        ev.process(logits, labels, feats)
    res = ev.evaluate()
    assert list(res) == SINGLE_KEYS
    assert all(isinstance(v, float) for v in res.values())

    logits, labels, feats = _concat(batches)
    conf, correct = M.confidences_from_probs(logits.double(), labels, from_logits=True)
    prox = M.knn_proximity(torch.nn.functional.normalize(feats, dim=1), k=cfg.TEST.PROXIMITY_K).double().numpy()
    expect = {
        "accuracy": M.accuracy(logits, labels),
        "macro_f1": M.macro_f1(logits, labels),
        "ece": M.ece(conf, correct),
        "mce": M.mce(conf, correct),
        "adaptive_ece": M.adaptive_ece(conf, correct),
        "piece": M.piece(conf, correct, prox),
        "mce_max": M.mce(conf, correct, weighted=False),
        "nll": M.nll(logits.double(), labels),
        "brier": M.brier(logits.double(), labels, from_logits=True),
    }
    expect["error_rate"] = 1 - expect["accuracy"]
    for k, v in expect.items():
        assert res[k] == pytest.approx(100 * v, abs=1e-7), k
    np.testing.assert_array_equal(ev.correct, correct)
    np.testing.assert_allclose(ev.confidences, conf, atol=1e-12)

    out = block.getvalue()
    assert out.startswith("=> result\n* total: 200\n")
    assert f"* correct: {int(correct.sum())}" in out
    m = re.search(r"\* accuracy: (\S+)%", out)  # what CoOp's parse_test_res.py looks for
    assert float(m.group(1)) == pytest.approx(res["accuracy"], abs=0.005)
    assert re.search(r"\* error: \S+%", out)
    for k in SINGLE_KEYS[2:]:
        assert re.search(rf"^\* {k}: [0-9.]+%$", out, re.M), k


def test_classification_without_features_has_no_piece_and_reset():
    cfg = get_cfg_default()
    ev = Classification(cfg)
    for logits, labels, _ in _batches(1):
        ev.process(logits, labels)
    res = ev.evaluate()
    assert list(res) == [k for k in SINGLE_KEYS if k != "piece"]
    assert ev.proximity is None
    ev.reset()
    with pytest.raises(RuntimeError, match="no samples"):
        ev.evaluate()
    with pytest.raises(ValueError, match="logits \\(B, C\\) and labels \\(B,\\)"):
        ev.process(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))


def test_proximity_pool_train_and_k():
    cfg = get_cfg_default()
    cfg.TEST.PROXIMITY_POOL = "train"
    cfg.TEST.PROXIMITY_K = 3
    batches = _batches(2)
    logits, labels, feats = _concat(batches)
    train = torch.randn(64, feats.shape[1], generator=torch.Generator().manual_seed(9))
    ev = Classification(cfg)
    ev.set_proximity_reference(train)
    for b in batches:
        ev.process(*b)
    res = ev.evaluate()
    fn = torch.nn.functional.normalize
    prox = M.knn_proximity(fn(feats, dim=1), k=3, reference=fn(train, dim=1)).double().numpy()
    np.testing.assert_allclose(ev.proximity, prox, atol=1e-6)
    conf, correct = M.confidences_from_probs(logits.double(), labels, from_logits=True)
    assert res["piece"] == pytest.approx(100 * M.piece(conf, correct, ev.proximity), abs=1e-9)
    # pool "test" ignores the reference; the evaluated set minus self is used
    cfg.TEST.PROXIMITY_POOL = "test"
    ev2 = Classification(cfg)
    ev2.set_proximity_reference(train)
    for b in batches:
        ev2.process(*b)
    ev2.evaluate()
    np.testing.assert_allclose(ev2.proximity, M.knn_proximity(fn(feats, dim=1), k=3).double().numpy(), atol=1e-6)
    cfg.TEST.PROXIMITY_POOL = "val"
    ev3 = Classification(cfg)
    ev3.process(*batches[0])
    with pytest.raises(ValueError, match="TEST.PROXIMITY_POOL"):
        ev3.evaluate()


def test_per_class_and_confusion_matrix(block):
    cfg = get_cfg_default()
    cfg.TEST.PER_CLASS_RESULT = True
    cfg.TEST.COMPUTE_CMAT = True
    lab2cname = {i: f"class{i}" for i in range(3)}
    ev = build_evaluator(cfg, lab2cname=lab2cname)
    logits = torch.tensor([[3.0, 0, 0], [3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0], [3.0, 0, 0]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    ev.process(logits, labels)
    res = ev.evaluate()
    assert list(res)[-1] == "perclass_accuracy"
    assert res["perclass_accuracy"] == pytest.approx((100 + 50 + 0) / 3)
    assert ev.per_class_accuracy == {0: 100.0, 1: 50.0, 2: 0.0}
    np.testing.assert_allclose(ev.cmat, [[1, 0, 0], [0, 0.5, 0.5], [1, 0, 0]])
    assert "cmat" not in res
    out = block.getvalue()
    assert "=> per-class result" in out and "* class: 1 (class1)" in out


def test_multilabel_evaluator(block):
    cfg = get_cfg_default()
    cfg.TEST.EVALUATOR = "MultiLabelClassification"
    groups = {"base": [0, 1, 2, 3], "new": [4, 5, 6, 7]}
    ev = build_evaluator(cfg, groups=groups)
    g = torch.Generator().manual_seed(3)
    logits_all, targets_all, feats_all = [], [], []
    for _ in range(3):
        t = (torch.rand(40, 8, generator=g) < 0.3).long()
        lg = torch.randn(40, 8, generator=g) * 2 + 2.5 * t - 1
        t[torch.rand(40, 8, generator=g) < 0.05] = -1
        f = torch.randn(40, 12, generator=g)
        ev.process(lg, t, f)
        logits_all.append(lg), targets_all.append(t), feats_all.append(f)
    res = ev.evaluate()
    assert list(res) == ["mAP", "cf1", "of1", "ece", "mce", "adaptive_ece", "ece_positive", "classwise_ece",
                         "piece", "accuracy", "mAP_base", "ece_base", "accuracy_base",
                         "mAP_new", "ece_new", "accuracy_new"]
    P = torch.sigmoid(torch.cat(logits_all).double()).numpy()
    Y = torch.cat(targets_all).numpy()
    cal = ML.multilabel_calibration(P, Y, groups=groups)
    cf1, of1 = ML.f1_scores(P, Y)
    assert res["mAP"] == pytest.approx(100 * ML.mean_average_precision(P, Y), abs=1e-9)
    assert res["cf1"] == pytest.approx(100 * cf1) and res["of1"] == pytest.approx(100 * of1)
    for k in ("ece", "mce", "adaptive_ece", "ece_positive", "classwise_ece", "accuracy",
              "ece_base", "accuracy_new"):
        assert res[k] == pytest.approx(100 * cal[k], abs=1e-9), k
    ap = ML.average_precision_per_class(P, Y)
    assert res["mAP_new"] == pytest.approx(100 * np.nanmean(ap[4:]), abs=1e-9)
    # PIECE over pairs, each carrying its image's proximity
    prox = M.knn_proximity(torch.nn.functional.normalize(torch.cat(feats_all), dim=1), k=10).double().numpy()
    bp = ML.binary_pairs(P, Y)
    assert res["piece"] == pytest.approx(100 * M.piece(bp["confidence"], bp["correct"], prox[bp["row_index"]]),
                                         abs=1e-7)
    np.testing.assert_array_equal(ev.correct, bp["correct"])
    out = block.getvalue()
    assert out.startswith("=> result\n* total: 120\n") and re.search(r"^\* mAP: [0-9.]+%$", out, re.M)
    with pytest.raises(ValueError, match="targets must be 1, 0 or -1"):
        ev.process(torch.zeros(2, 8), torch.full((2, 8), 2))
    with pytest.raises(ValueError, match="same shape"):
        ev.process(torch.zeros(2, 8), torch.zeros(2, 7))


def test_train_pool_without_reference_falls_back_with_a_warning(block):
    cfg = get_cfg_default()
    cfg.TEST.PROXIMITY_POOL = "train"
    cfg.TEST.PROXIMITY_K = 50  # more than the 49 other samples: clamped
    logits, labels, feats = _batches(5, n_batches=1)[0]
    ev = Classification(cfg)
    ev.process(logits, labels, feats)
    res = ev.evaluate()
    assert "piece" in res
    out = block.getvalue()
    assert "Warning: TEST.PROXIMITY_POOL is 'train'" in out and "using k=49" in out
    expect = M.knn_proximity(torch.nn.functional.normalize(feats, dim=1), k=49).double().numpy()
    np.testing.assert_allclose(ev.proximity, expect, atol=1e-6)
