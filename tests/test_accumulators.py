"""calibration.accumulators: batch-wise update/compute equals the functional metrics on all samples."""
import numpy as np
import pytest
import torch

from cpt.calibration import accumulators as A
from cpt.calibration import metrics as M
from cpt.calibration import multilabel as ML


def test_classification_batches_equal_one_shot_and_reset():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(300, 7, generator=g) * 3, torch.randint(0, 7, (300,), generator=g)
    acc = A.ClassificationAccumulator()
    for s in range(0, 300, 64):  # uneven last batch
        acc.update(logits[s:s + 64], labels[s:s + 64])
    got = acc.compute()
    conf, correct = M.confidences_from_probs(logits, labels, from_logits=True)
    assert got["accuracy"] == pytest.approx(correct.mean(), abs=0)
    assert got["ece"] == pytest.approx(M.ece(conf, correct), abs=1e-12)
    assert got["adaptive_ece"] == pytest.approx(M.adaptive_ece(conf, correct), abs=1e-12)
    assert got["nll"] == pytest.approx(M.nll(logits, labels), abs=1e-12)
    counts = acc.per_class_counts()
    assert sum(t for t, _ in counts.values()) == 300
    assert sum(c for _, c in counts.values()) == int(correct.sum())
    cm = acc.confusion_matrix()
    np.testing.assert_allclose(cm.sum(axis=1)[np.unique(labels.numpy())], 1.0)
    acc.reset()
    with pytest.raises(RuntimeError, match="no samples"):
        acc.compute()


def test_proximity_needs_features_for_every_sample():
    acc = A.ClassificationAccumulator()
    feats = torch.randn(40, 5, generator=torch.Generator().manual_seed(1))
    acc.update(torch.randn(20, 3), torch.zeros(20, dtype=torch.long), feats[:20])
    acc.update(torch.randn(20, 3), torch.zeros(20, dtype=torch.long), feats[20:])
    expect = M.knn_proximity(torch.nn.functional.normalize(feats, dim=1), k=10).double().numpy()
    np.testing.assert_allclose(acc.proximity(k=10), expect, atol=1e-6)
    warned = []
    assert acc.proximity(k=50, warn=warned.append).shape == (40,) and "using k=39" in warned[0]
    acc.update(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))  # no features for these
    assert acc.proximity(warn=warned.append) is None and "features were given for 40 of 45" in warned[-1]


def test_multilabel_batches_equal_one_shot():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(50, 6, generator=g) * 2
    targets = (torch.rand(50, 6, generator=g) < 0.3).long()
    targets[0, 0] = -1
    acc = A.MultiLabelAccumulator()
    acc.update(logits[:17], targets[:17])
    acc.update(logits[17:], targets[17:])
    got = acc.compute(groups={"base": [0, 1, 2]})
    expect = ML.multilabel_metrics(torch.sigmoid(logits.double()).numpy(), targets.numpy(), n_bins=10,
                                   groups={"base": [0, 1, 2]})[0]
    assert list(got) == list(expect)
    for k in expect:
        assert got[k] == pytest.approx(expect[k], abs=1e-12, nan_ok=True)
    with pytest.raises(ValueError, match="targets must be 1, 0 or -1"):
        acc.update(logits[:2], targets[:2] * 2)


def test_result_block_format():
    text = A.result_block(1234, {"accuracy": 81.234, "error_rate": 18.766}, ("* correct: 1,002",))
    assert text.splitlines() == ["=> result", "* total: 1,234", "* correct: 1,002",
                                 "* accuracy: 81.23%", "* error: 18.77%"]
