"""TEST.SAVE_OUTPUTS (the evaluated scores beside results.json) and scripts/score_diagnostics.py
(accuracy vs per-class ranking, with and without a per-image common term)."""
import json
import os

import numpy as np
import pytest

from scripts import score_diagnostics as sd
from tests.engine_fixtures import write_fixture_tree
from tests.runs import train_main


def run_zero_shot(root, out, *opts):
    argv = ["--root", root, "--output-dir", out, "--trainer", "ZeroshotCLIP", "--seed", "1", "--eval-only",
            "DATASET.NAME", "EngineFixture", "INPUT.SIZE", "(32, 32)", "INPUT.TRANSFORMS", "('normalize',)",
            "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "16",
            "MODEL.BACKBONE.NAME", "world-tiny", "MODEL.BACKBONE.PRETRAINED", "False",
            "TEST.RELIABILITY_DIAGRAM", "False", *opts]
    return train_main(argv)


def test_saved_outputs_reproduce_the_reported_metrics(tmp_path):
    root = str(tmp_path / "data")
    write_fixture_tree(root, per_class=(2, 1, 4), size=32)
    out = str(tmp_path / "zs")
    trainer = run_zero_shot(root, out, "TEST.SAVE_OUTPUTS", "True")
    res = json.load(open(os.path.join(out, "results.json")))
    assert res["outputs"] == "outputs_test.npz"
    scores, labels = sd.load_outputs(out)
    assert scores.shape == (len(labels), trainer.num_classes) and labels.ndim == 1
    np.testing.assert_allclose(scores, trainer.last_outputs["logits"].numpy(), rtol=0, atol=1e-6)
    d = sd.diagnostics(scores, labels)
    assert d["acc"] == pytest.approx(res["metrics"]["accuracy"], abs=1e-9)
    with np.load(os.path.join(out, "outputs_test.npz")) as f:
        assert sorted(f["index"].tolist()) == list(range(len(labels)))
    # off by default: no file, no key
    out2 = str(tmp_path / "zs_default")
    run_zero_shot(root, out2)
    assert not os.path.exists(os.path.join(out2, "outputs_test.npz"))
    assert "outputs" not in json.load(open(os.path.join(out2, "results.json")))
    with pytest.raises(FileNotFoundError, match="TEST.SAVE_OUTPUTS True"):
        sd.load_outputs(out2)


def test_diagnostics_separate_class_offsets_from_per_image_terms():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 5)
    scores = rng.normal(size=(20, 4)) + 2.0 * np.eye(4)[labels]
    base = sd.diagnostics(scores, labels)
    # golden: a perfectly separable toy has accuracy 100 and mAP 100
    perfect = sd.diagnostics(np.eye(4)[labels] + 0.01 * rng.random((20, 4)), labels)
    assert perfect["acc"] == 100.0 and perfect["map"] == pytest.approx(100.0)
    # per-class offsets: mAP and centred mAP unchanged (per-class ranking), accuracy changes
    offsets = np.array([3.0, 0.0, -3.0, 0.0])
    shifted = sd.diagnostics(scores + offsets, labels)
    assert shifted["map"] == pytest.approx(base["map"], abs=1e-9)
    assert shifted["map_centred"] == pytest.approx(base["map_centred"], abs=1e-9)
    assert shifted["acc"] != base["acc"]
    # a per-image common term: accuracy and centred mAP unchanged, mAP falls
    common = 10.0 * rng.normal(size=(20, 1))
    noisy = sd.diagnostics(scores + common, labels)
    assert noisy["acc"] == base["acc"]
    assert noisy["map_centred"] == pytest.approx(base["map_centred"], abs=1e-9)
    assert noisy["map"] < base["map"] - 10
    assert noisy["image_mean_std"] > 5 * base["image_mean_std"]


def test_diagnostics_multilabel_ignores_unknown_entries():
    targets = np.array([[1, 0], [0, 1], [1, -1], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 5.0], [0.1, 0.3]])
    d = sd.diagnostics(scores, targets)
    assert "acc" not in d
    assert d["map"] == pytest.approx(100.0)  # the -1 entry (score 5.0) is dropped
