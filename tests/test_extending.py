"""Extending the project without editing it (docs/design.md section 11): tests/toy_extensions.py
adds a prompt learner, a regularizer and a post-hoc calibrator as a user's plugin would, and they
train, evaluate, sweep and parse like the built-in ones."""
import json
import os
import subprocess
import sys

import pytest
import torch

from cpt.cli.plugins import load_plugins
from tests.engine_fixtures import write_fixture_tree
from tests.runs import INIT, REPO, run

PLUGIN = os.path.join(REPO, "tests", "toy_extensions.py")


@pytest.fixture(scope="module")
def toy():
    """The plugin loaded in this process, and taken out of every registry afterwards (the other
    test modules check the built-in registries' exact contents)."""
    from cpt.cli import catalog, plugins
    from cpt.calibration.posthoc import POSTHOC
    from cpt.calibration.regularizers import REGULARIZERS
    from cpt.engine.trainer import TRAINER_REGISTRY
    from cpt.trainers import config

    (module,) = load_plugins([PLUGIN])
    yield module
    for registry, name in ((TRAINER_REGISTRY, "ToyShift"), (REGULARIZERS, "toy_l2"), (POSTHOC, "toy_scale"),
                           (catalog.METHODS, "toyshift")):
        registry._obj_map.pop(name, None)
    config._DEFAULTS.pop("TOYSHIFT", None)
    plugins._loaded.pop(PLUGIN, None)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data"))
    write_fixture_tree(path, per_class=(6, 2, 4), size=32)
    return path


def test_toy_method_regularizer_and_calibrator_in_process(toy, root, tmp_path):
    from cpt.calibration.posthoc import POSTHOC
    from cpt.calibration.regularizers import REGULARIZERS
    from cpt.engine.config import get_cfg_default

    cfg = get_cfg_default()  # the plugin's defaults became config keys
    assert cfg.CALIB.TOY_L2.WEIGHT == 0.25 and cfg.CALIB.TOY_SCALE.FACTOR == 2.0
    assert "toy_l2" in REGULARIZERS and "toy_scale" in POSTHOC
    zs = run(root, str(tmp_path / "zs"), "ZeroshotCLIP", *INIT["ZeroshotCLIP"], flags=["--eval-only"])
    t0 = run(root, str(tmp_path / "t0"), "ToyShift", epochs=0)  # before training: zero-shot CLIP
    assert (t0.last_outputs["logits"] - zs.last_outputs["logits"]).abs().max() < 1e-5
    # trained with the toy regularizer; the toy calibrator halves the logits it reports
    t = run(root, str(tmp_path / "t"), "ToyShift", "CALIB.METHOD", "toy_l2", "CALIB.TOY_L2.WEIGHT", "0.5",
            "CALIB.POSTHOC", "toy_scale", epochs=2)
    assert float(t.learner.shift.detach().abs().max()) > 0  # the shift learned something
    assert t.regularizers[0].params["weight"] == 0.5
    assert torch.allclose(t.last_scores * 2.0, t.last_outputs["logits"].to(t.last_scores.dtype), atol=1e-5)
    res = json.load(open(os.path.join(str(tmp_path / "t"), "results.json")))
    assert res["status"] == "finished" and res["calibration"] == "toy_l2+toy_scale"


def test_toy_method_in_the_sweep_and_the_parser(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATASETS", "SEEDS", "CFG", "CALIB", "OPTS")}
    env.update(CPT_PLUGINS=PLUGIN, DATA=str(tmp_path / "data"), CPT_CACHE_DIR=str(tmp_path / "cache"),
               OMP_NUM_THREADS="1")
    out = str(tmp_path / "output")
    sweep = [sys.executable, "scripts/sweep.py", "--datasets", "shapeworld", "--methods", "toyshift",
             "--seeds", "1", "--shots", "1", "--output", out, "--gpus", "none", "--workers", "1",
             "--opts", "OPTIM.MAX_EPOCH 1 DATALOADER.TEST.BATCH_SIZE 400", "--load-epoch", "1"]
    p = subprocess.run(sweep, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    acc = {}
    for step in ("train_base", "test_new"):
        run_dir = os.path.join(out, "base2new", step, "shapeworld", "shots_1", "ToyShift", "world_ep50", "seed1")
        res = json.load(open(os.path.join(run_dir, "results.json")))
        assert res["status"] == "finished" and res["trainer"] == "ToyShift", step
        acc[step] = res["metrics"]["accuracy"]
    p = subprocess.run([sys.executable, "scripts/parse_results.py", out, "--format", "csv", "--trainer", "ToyShift"],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    row = next(line.split(",") for line in p.stdout.splitlines() if line.startswith("shapeworld,"))
    assert float(row[1]) == pytest.approx(acc["train_base"], abs=1e-4)
    assert float(row[3]) == pytest.approx(acc["test_new"], abs=1e-4)
