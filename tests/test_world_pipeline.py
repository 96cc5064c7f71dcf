"""The whole loop on the offline world with the real train.py and the shipped tiny CLIP.

1. The bash loop a user runs (train on base, test on new, parse_all_results.sh) with DATA set
   prints a table with base, new and HM for the world and the average row.
2. scripts/sweep.py on a 2 x 2 grid (seeds x calibrators) with the local CPU executor skips the
   unit the bash loop already finished, runs the rest; after one unit's runs are removed (as if
   the sweep had been killed there) a restart runs only that unit.
Runs are shortened (1 shot, 1 epoch): the numbers are not the point, the plumbing is.
"""
import csv
import io
import json
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("world_pipeline")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATASETS", "SEEDS", "CFG", "CALIB", "SHOTS", "OPTS", "GPU", "LOAD_EPOCH",
                        "DRY_RUN", "CUDA_VISIBLE_DEVICES")}
    env.update(PYTHON=sys.executable, DATA=str(tmp / "data"), OUTPUT=str(tmp / "output"),
               CPT_CACHE_DIR=str(tmp / "cache"), DATASETS="shapeworld", CFG="world_ep50", SHOTS="1",
               OPTS="OPTIM.MAX_EPOCH 1 DATALOADER.TEST.BATCH_SIZE 400")
    os.makedirs(env["DATA"])
    return tmp, env


def _run(cmd, env, **extra):
    e = dict(env)
    e.update(extra)
    p = subprocess.run(cmd, env=e, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def test_bash_loop_then_sweep_restart(world):
    tmp, env = world
    out = env["OUTPUT"]
    _run(["bash", "scripts/coop/base2new_train_coop_datasets.sh"], env, SEEDS="1")
    _run(["bash", "scripts/coop/base2new_test_coop_datasets.sh"], env, SEEDS="1")
    p = _run(["bash", "scripts/coop/parse_all_results.sh", "--format", "csv"], env)
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert [r["dataset"] for r in rows] == ["shapeworld", "average"]
    row = rows[0]
    base, new, hm = float(row["base_acc"]), float(row["new_acc"]), float(row["hm"])
    assert 0 < base <= 100 and 0 < new <= 100
    assert hm == pytest.approx(2 * base * new / (base + new), abs=0.01)
    run_dir = os.path.join(out, "base2new", "test_new", "shapeworld", "shots_1", "CoOp", "world_ep50", "seed1")
    with open(os.path.join(run_dir, "results.json")) as f:
        res = json.load(f)
    assert res["status"] == "finished" and res["metrics"]["accuracy"] == pytest.approx(new, abs=0.01)
    assert any(n.startswith("reliability") and n.endswith(".png") for n in os.listdir(run_dir))

    sweep = [sys.executable, "scripts/sweep.py", "--datasets", "shapeworld", "--methods", "coop:world_ep50",
             "--calibs", "none", "tcpt", "--seeds", "1", "2", "--shots", "1", "--output", out,
             "--gpus", "none", "--workers", "1"]
    p = _run(sweep, env)
    started = [line for line in p.stdout.splitlines() if line.startswith("[start]")]
    assert len(started) == 6, p.stdout          # 3 units x (train, test); seed 1 without calib was done
    assert not any("world_ep50/shapeworld/shots_1/seed1 " in s and "tcpt" not in s for s in started)

    # a sweep killed inside the (tcpt, seed 2) unit: its runs are incomplete; a restart runs only them
    victim = os.path.join("shapeworld", "shots_1", "CoOp", "world_ep50_tcpt", "seed2")
    os.remove(os.path.join(out, "base2new", "test_new", victim, "results.json"))
    with open(os.path.join(out, "base2new", "train_base", victim, "results.json")) as f:
        res = json.load(f)
    res["status"] = "running"
    with open(os.path.join(out, "base2new", "train_base", victim, "results.json"), "w") as f:
        json.dump(res, f)
    p = _run(sweep, env)
    started = [line for line in p.stdout.splitlines() if line.startswith("[start]")]
    assert len(started) == 2 and all("tcpt" in s and "seed2" in s for s in started), p.stdout
    p = _run(sweep + ["--dry-run"], env)
    assert "0 to run" in p.stdout, p.stdout
