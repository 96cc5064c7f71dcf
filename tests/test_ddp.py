"""DDP on the CPU: torchrun with the gloo backend and two processes."""
import json
import os
import subprocess
import sys

import pytest

from tests.engine_fixtures import write_fixture_tree
from tests.runs import engine_args as _args
from tests.runs import train_main

LAUNCHER = os.path.join(os.path.dirname(__file__), "ddp_launcher.py")


def _torchrun(args, env):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           LAUNCHER, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


def test_ddp_two_processes_match_single_process(tmp_path):
    root = str(tmp_path / "data")
    write_fixture_tree(root, per_class=(6, 2, 7))  # 35 test items: odd, so the sampler pads
    env = dict(os.environ, OMP_NUM_THREADS="1", CPT_CACHE_DIR=str(tmp_path / "cache"))
    ddp_train = str(tmp_path / "ddp_train")
    r = _torchrun(_args(root, ddp_train, epochs=2), env)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.load(open(os.path.join(ddp_train, "results.json")))
    assert res["status"] == "finished"
    # evaluation gathered across ranks equals a single-process evaluation of the same checkpoint
    ddp_eval = str(tmp_path / "ddp_eval")
    r = _torchrun(_args(root, ddp_eval, "--eval-only", "--model-dir", ddp_train, "--load-epoch", "2"), env)
    assert r.returncode == 0, r.stderr[-3000:]
    single = train_main(_args(root, str(tmp_path / "single"), "--eval-only", "--model-dir", ddp_train,
                              "--load-epoch", "2"))
    got = json.load(open(os.path.join(ddp_eval, "results.json")))["metrics"]
    want = single.last_results["test"]
    for k in ("accuracy", "ece", "mce", "adaptive_ece", "piece", "nll"):
        assert got[k] == pytest.approx(want[k], rel=1e-5, abs=1e-6), k  # float32 batch-size rounding
    assert "* total: 35" in open(os.path.join(ddp_eval, "log.txt")).read()
