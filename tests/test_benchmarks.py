"""benchmarks/gpu_check.sh starts and runs both benchmarks in its CPU mode (tiny setting); without
a GPU and without --cpu it stops with a clear message."""
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(*args, **env):
    e = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1", **env)
    e.pop("OUT", None)
    return subprocess.run(["bash", os.path.join(REPO, "benchmarks", "gpu_check.sh"), *args], env=e, cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def test_gpu_check_cpu_mode_runs_both_benchmarks(tmp_path):
    log = str(tmp_path / "logs" / "gpu_check.log")
    p = _run("--cpu", "--precs", "bf16", "--log", log, BENCH_TRAIN_ARGS="--trainers CoOp MaPLe")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = p.stdout
    assert "=== bench_train, precision bf16 ===" in out and "=== bench_eval, precision bf16 ===" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("CoOp ", "MaPLe "))]
    assert [r[0] for r in rows] == ["CoOp", "MaPLe"]
    for r in rows:  # median times, their ratio and the loss difference of the two paths
        short, full, ratio, dloss = float(r[5]), float(r[6]), float(r[7].rstrip("x")), float(r[8])
        # the times are printed to 1 ms and the ratio to 0.01: compare within that rounding
        lo, hi = (full - 5e-4) / (short + 5e-4), (full + 5e-4) / max(short - 5e-4, 1e-9)
        assert short > 0 and full > 0 and lo - 0.005 <= ratio <= hi + 0.005
        assert dloss < 1e-4
    assert "sweep of 2 runs sharing the cache" in out and out.rstrip().endswith("gpu_check.sh: done")
    with open(log) as f:
        assert "gpu_check.sh: done" in f.read()


def test_gpu_check_without_gpu_needs_the_cpu_flag():
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    p = _run()
    assert p.returncode == 1 and "no CUDA device visible; use --cpu" in p.stderr
    p = _run("--bogus")
    assert p.returncode == 2 and "unknown argument --bogus" in p.stderr
