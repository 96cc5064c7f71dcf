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
    from cpt.calibration.posthoc import POSTHOC
    from cpt.calibration.regularizers import REGULARIZERS
    from cpt.cli import catalog, plugins
    from cpt.engine.data import DATASET_REGISTRY
    from cpt.engine.trainer import TRAINER_REGISTRY

    (module,) = load_plugins([PLUGIN])
    yield module
    for registry, name in ((TRAINER_REGISTRY, "ToyShift"), (REGULARIZERS, "toy_l2"), (POSTHOC, "toy_scale"),
                           (catalog.METHODS, "toyshift"), (DATASET_REGISTRY, "ToyColours")):
        registry._obj_map.pop(name, None)
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


def test_toy_dataset_from_a_yaml_path_in_the_driver_and_the_sweep(toy, tmp_path):
    """The plugin's dataset, its yaml outside the project, through scripts/drive.py (train, then the
    test of every trained run of DATASETS) and scripts/sweep.py (its seed 1 finished by the driver
    with the same options, seed 2 run); runs go to folders named by the yaml's stem."""
    data = tmp_path / "data"
    toy.write_toy_colours(str(data))
    ds = tmp_path / "lab" / "toy_colours.yaml"
    ds.parent.mkdir()
    ds.write_text('DATASET:\n  NAME: "ToyColours"\nINPUT:\n  SIZE: (32, 32)\n')
    out = str(tmp_path / "output")
    env = {k: v for k, v in os.environ.items() if k not in ("DATASETS", "SEEDS", "CFG", "CALIB", "LOAD_EPOCH")}
    env.update(CPT_PLUGINS=PLUGIN, DATA=str(data), CPT_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1",
               OUTPUT=out, PYTHON=sys.executable, SHOTS="1", OPTS="OPTIM.MAX_EPOCH 1 TEST.RELIABILITY_DIAGRAM False")

    def call(*argv, **more):
        p = subprocess.run([sys.executable, *argv], env={**env, **more}, cwd=REPO, capture_output=True, text=True,
                           timeout=600)
        return p.returncode, p.stdout + p.stderr

    def finished(seed):
        for step in ("train_base", "test_new"):
            run_dir = os.path.join(out, "base2new", step, "toy_colours", "shots_1", "ToyShift", "world_ep50",
                                   f"seed{seed}")
            res = json.load(open(os.path.join(run_dir, "results.json")))
            assert res["status"] == "finished" and res["dataset"] == "toy_colours", (step, res)
            assert res["subsample"] == ("base" if step == "train_base" else "new")

    rc, log = call("scripts/drive.py", "toyshift", "train", str(ds), "1")
    assert rc == 0, log[-3000:]
    rc, log = call("scripts/drive.py", "toyshift", "test", DATASETS=str(ds))
    assert rc == 0, log[-3000:]
    finished(1)
    rc, log = call("scripts/sweep.py", "--datasets", str(ds), "--methods", "toyshift", "--seeds", "1", "2",
                   "--shots", "1", "--gpus", "none", "--load-epoch", "1")
    assert rc == 0 and "# 2 units, 1 finished, 1 to run" in log, log[-3000:]
    finished(2)
    # a dataset that is neither a stem of configs/datasets/ nor an existing .yaml file: one line naming it
    missing = str(tmp_path / "lab" / "nope.yaml")
    for argv in (("scripts/drive.py", "toyshift", "train", missing, "1"),
                 ("scripts/sweep.py", "--datasets", missing, "--methods", "toyshift", "--dry-run")):
        rc, log = call(*argv)
        assert rc != 0 and f"error: dataset config '{missing}' not found: expected {missing} (available: " in log, log
