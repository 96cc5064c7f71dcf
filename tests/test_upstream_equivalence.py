"""The project against upstream's own numbers on the tiny OpenAI-format CLIP (fp32).

Fixtures: tests/fixtures/upstream/upstream_<method>.json, written by run_upstream.py running
the forks themselves (see the README there). Tolerances (the issue's): logits and step-0 loss
1e-5 relative, gradients 1e-4 relative (to the largest entry), 10-step loss curve 1e-4, LR equal.
"""
import json
import os

import numpy as np
import pytest
import torch

import train
from tests import upstream_layouts as layouts
from tests.fixtures.upstream import tiny_clip

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "upstream")
KEYS = {"CoOp": "COOP", "KgCoOp": "KGCOOP"}


def fixture(name):
    with open(os.path.join(FIX, f"upstream_{name}.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("equiv")
    root = str(base / "data")
    layouts.write_dtd(root)
    clip_path = str(base / "tiny_openai_clip.pt")
    return root, clip_path, tiny_clip.write(clip_path)


def project_trainer(setup, method, out_dir):
    root, clip_path, _ = setup
    rec = fixture(method)
    node = KEYS[method]
    opts = ["DATASET.NAME", "DescribableTextures", "INPUT.SIZE", "(32, 32)", "MODEL.BACKBONE.NAME", clip_path,
            f"TRAINER.{node}.CTX_INIT", "a photo of a", f"TRAINER.{node}.PREC", "fp32",
            "DATALOADER.NUM_WORKERS", "0", "TEST.RELIABILITY_DIAGRAM", "False"]
    for k, v in rec["settings"].items():
        opts += [k, str(v)]
    if method == "KgCoOp":
        opts += ["TRAINER.KGCOOP.W", str(rec["w"])]
    argv = ["--root", root, "--output-dir", str(out_dir), "--trainer", method, "--seed", "1", "--no-train", *opts]
    return train.main(train.build_parser().parse_args(argv))


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def run_project(t, rec):
    images, labels = tiny_clip.inputs(num_classes=len(rec["classnames"]))
    learn = {n: p for n, p in t.learner.named_parameters() if p.requires_grad}
    got = {"init_params": {n: p.detach().tolist() for n, p in learn.items()}}
    with torch.no_grad():
        got["logits_init"] = t.forward_logits(images)["logits"].tolist()
    t.num_batches, t.batch_idx, t.epoch = 1, 0, 0  # one batch per epoch: update_lr after each step
    optim = t._optims["prompt_learner"]
    losses, lrs = [], []
    for step in range(len(rec["losses"])):
        lrs.append(optim.param_groups[0]["lr"])
        losses.append(t.forward_backward({"img": images, "label": labels})["loss"])
        if step == 0:
            got["grads_step0"] = {n: p.grad.detach().tolist() for n, p in learn.items()}
    got["losses"], got["lrs"] = losses, lrs
    got["loss_step0"] = losses[0]
    return got


@pytest.mark.parametrize("method", ["CoOp", "KgCoOp"])
def test_method_matches_upstream(method, setup, tmp_path):
    rec = fixture(method if method != "KgCoOp" else "KgCoOp_zsfp32")
    assert rec["tiny_clip_digest"] == setup[2], "the tiny CLIP differs from the one upstream ran on"
    assert rec["classnames"] == layouts.DTD_CLASSES
    got = run_project(project_trainer(setup, method, tmp_path / "out"), rec)
    assert list(got["init_params"]) == list(rec["init_params"]) == ["ctx"]
    assert rel_err(got["init_params"]["ctx"], rec["init_params"]["ctx"]) == 0.0
    assert rel_err(got["logits_init"], rec["logits_init"]) < 1e-5
    assert abs(got["loss_step0"] - rec["loss_step0"]) / abs(rec["loss_step0"]) < 1e-5
    assert rel_err(got["grads_step0"]["ctx"], rec["grads_step0"]["ctx"]) < 1e-4
    assert rel_err(got["losses"], rec["losses"]) < 1e-4
    assert np.allclose(got["lrs"], rec["lrs"], rtol=1e-12, atol=0)


def test_kgcoop_uses_its_own_dtd_template(setup, tmp_path):
    """KgCoOp's table says "a photo of a {}, a type of texture." for DTD; with CoOp's "{} texture."
    the step-0 loss would be off (the knowledge term is x8)."""
    t = project_trainer(setup, "KgCoOp", tmp_path / "out")
    assert t.template == "a photo of a {}, a type of texture."
    rec = fixture("KgCoOp_zsfp32")
    images, labels = tiny_clip.inputs(num_classes=7)
    t.zs_text_features = t.clip.zero_shot_text_features(t.classnames, "{} texture.")
    t.num_batches, t.batch_idx, t.epoch = 1, 0, 0
    wrong = t.forward_backward({"img": images, "label": labels})["loss"]
    assert abs(wrong - rec["loss_step0"]) / rec["loss_step0"] > 1e-3
