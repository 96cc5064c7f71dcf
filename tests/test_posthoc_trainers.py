"""CALIB.POSTHOC inside the prompt-learner trainers (trainers/posthoc.py), through train.py on the
5-class fixture with a randomly initialised tiny CLIP: temperature fitted on the training run's
validation split and saved beside the checkpoint, DAC on the new classes of a trained model
directory, SaLS, and the errors."""
import json
import os

import pytest
import torch

from cpt.calibration.posthoc import fit_temperature
from tests.engine_fixtures import write_fixture_tree
from tests.runs import INIT, run


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data"))
    write_fixture_tree(path, per_class=(6, 3, 4), size=32)
    return path


@pytest.fixture(scope="module")
def trained(root, tmp_path_factory):
    """A CoOp run on the base classes, trained with CALIB.POSTHOC temperature."""
    out = str(tmp_path_factory.mktemp("coop_base"))
    t = run(root, out, "CoOp", *INIT["CoOp"], "CALIB.POSTHOC", "temperature", "DATASET.SUBSAMPLE_CLASSES", "base")
    return out, t


def test_temperature_fitted_on_val_saved_and_reloaded(root, trained, tmp_path):
    out, t = trained
    with open(os.path.join(out, "posthoc.json")) as f:
        state = json.load(f)
    temp = state["state"]["temperature"]
    # the saved temperature is the NLL fit on the validation split of the deployed model
    t.posthoc.cal.state = {}
    val = t.collect_outputs(t.val_loader, "val")
    assert temp == pytest.approx(fit_temperature(val["logits"], val["labels"]), rel=1e-6)
    # the reported test metrics are after scaling: raw logits / T, same accuracy
    raw = run(root, str(tmp_path / "raw"), "CoOp", *INIT["CoOp"], "DATASET.SUBSAMPLE_CLASSES", "base",
              flags=["--eval-only", "--model-dir", out, "--load-epoch", "1"])
    ev = run(root, str(tmp_path / "ev"), "CoOp", *INIT["CoOp"], "CALIB.POSTHOC", "temperature",
             "DATASET.SUBSAMPLE_CLASSES", "base", flags=["--eval-only", "--model-dir", out, "--load-epoch", "1"])
    assert torch.equal(ev.last_outputs["logits"], raw.last_outputs["logits"])  # collected before the step
    assert torch.allclose(torch.as_tensor(ev.posthoc.cal.apply(raw.last_outputs["logits"])).float(),
                          raw.last_outputs["logits"] / temp, atol=1e-5)
    assert ev.last_results["test"]["accuracy"] == raw.last_results["test"]["accuracy"]
    assert ev.last_results["test"]["nll"] != raw.last_results["test"]["nll"]
    assert ev.results_extra()["posthoc_state"]["state"]["temperature"] == pytest.approx(temp)


def test_temperature_needs_the_fitted_file(root, tmp_path):
    plain = str(tmp_path / "plain")
    run(root, plain, "CoOp", *INIT["CoOp"], "DATASET.SUBSAMPLE_CLASSES", "base")
    with pytest.raises(FileNotFoundError, match="no posthoc.json in the model directory"):
        run(root, str(tmp_path / "ev"), "CoOp", *INIT["CoOp"], "CALIB.POSTHOC", "temperature",
            "DATASET.SUBSAMPLE_CLASSES", "new", flags=["--eval-only", "--model-dir", plain, "--load-epoch", "1"])


def test_dac_on_new_classes_keeps_accuracy_and_scales_rows(root, trained, tmp_path):
    out, _ = trained
    assert json.load(open(os.path.join(out, "train_classnames.json"))) == trained[1].classnames and len(trained[1].classnames) == 3
    args = ("DATASET.SUBSAMPLE_CLASSES", "new")
    flags = ["--eval-only", "--model-dir", out, "--load-epoch", "1"]
    raw = run(root, str(tmp_path / "raw"), "CoOp", *INIT["CoOp"], *args, flags=flags)
    dac = run(root, str(tmp_path / "dac"), "CoOp", *INIT["CoOp"], *args, "CALIB.POSTHOC", "dac", flags=flags)
    factors = torch.tensor(dac.posthoc.cal.state["factors"], dtype=torch.float64)
    assert factors.shape == (2,) and (factors > 0).all()
    logits = raw.last_outputs["logits"].double()
    scaled = dac.posthoc.cal.apply(logits)
    pred = logits.argmax(1)
    assert torch.equal(scaled.argmax(1), pred)
    assert torch.allclose(scaled, logits * factors[pred][:, None], atol=1e-6)
    assert dac.last_results["test"]["accuracy"] == raw.last_results["test"]["accuracy"]
    # in the training run the test classes are the training classes: every factor is 1
    base = run(root, str(tmp_path / "dac_base"), "CoOp", *INIT["CoOp"], "DATASET.SUBSAMPLE_CLASSES", "base",
               "CALIB.POSTHOC", "dac", flags=flags)
    assert base.posthoc.cal.state["factors"] == pytest.approx([1.0, 1.0, 1.0])


def test_sals_uses_zero_shot_logits_and_bad_pairs_fail_at_build(root, tmp_path):
    s = run(root, str(tmp_path / "s"), "CoOp", *INIT["CoOp"], "CALIB.POSTHOC", "sals", epochs=0)
    assert "SaLS" in s.posthoc.note
    with pytest.raises(ValueError, match="dac needs class text features .* CoCoOp"):
        run(root, str(tmp_path / "c"), "CoCoOp", *INIT["CoCoOp"], "CALIB.POSTHOC", "dac", epochs=0)
    with pytest.raises(ValueError, match="sals needs zero-shot logits .* MaPLe prompts the image encoder"):
        run(root, str(tmp_path / "m"), "MaPLe", *INIT["MaPLe"], "CALIB.POSTHOC", "sals", epochs=0)
