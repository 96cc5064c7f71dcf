"""scripts/sweep.py on a 2 x 2 grid (datasets x seeds) with a fake train.py (tests/fake_train.py).

Checks the dry run, the local queue, the restart of an interrupted sweep (a killed sweep and a
sweep with a failing run: the restart runs only the unfinished steps) and submitit's
LocalExecutor.
"""
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import sweep  # noqa: E402
import sweep_executors  # noqa: E402
from tests.fake_runs import fake_repo, read_calls  # noqa: E402

PY = sys.executable
GRID = ["--datasets", "dtd", "eurosat", "--seeds", "1", "2", "--methods", "coop"]


@pytest.fixture
def fake(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    fake_repo(root, [("CoOp", "vit_b16_ep50_ctxv1", "OPTIM:\n  MAX_EPOCH: 50\n")], ("dtd", "eurosat"))
    log = tmp_path / "calls.jsonl"
    for k in ("OUTPUT", "OPTS", "LOAD_EPOCH", "FAKE_FAIL", "FAKE_SLEEP", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PYTHON", PY)
    monkeypatch.setenv("FAKE_LOG", str(log))

    class F:
        pass
    f = F()
    f.root, f.out, f.log, f.tmp = str(root), str(tmp_path / "out"), str(log), tmp_path
    f.args = ["--repo-root", f.root, "--output", f.out] + GRID

    def calls():
        out = []
        for rec in read_calls(f.log):
            a = rec["argv"]
            ds = os.path.basename(a[a.index("--dataset-config-file") + 1])[:-5]
            out.append((ds, int(a[a.index("--seed") + 1]), a[-1]))  # last word: base / new
        return out
    f.calls = calls
    return f


def finished_steps(out):
    steps = set()
    for split, side in (("train_base", "base"), ("test_new", "new")):
        for ds in ("dtd", "eurosat"):
            for seed in (1, 2):
                d = os.path.join(out, "base2new", split, ds, "shots_16", "CoOp", "vit_b16_ep50_ctxv1", f"seed{seed}")
                if sweep.is_finished(d):
                    steps.add((ds, seed, side))
    return steps


ALL = {(d, s, side) for d in ("dtd", "eurosat") for s in (1, 2) for side in ("base", "new")}


def test_dry_run(fake, capsys):
    assert sweep.main(fake.args + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    cmds = [line for line in out.splitlines() if not line.startswith("#")]
    assert len(cmds) == 8 and "# 4 units, 0 finished, 4 to run" in out
    train_dir = os.path.join(fake.out, "base2new/train_base/dtd/shots_16/CoOp/vit_b16_ep50_ctxv1/seed1")
    cfg = os.path.join(fake.root, "configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml")
    ds = os.path.join(fake.root, "configs/datasets/dtd.yaml")
    base = [PY, os.path.join(fake.root, "train.py"), "--root", os.environ["DATA"], "--seed", "1", "--trainer",
            "CoOp", "--dataset-config-file", ds, "--config-file", cfg, "--output-dir"]
    assert cmds[0] == shlex.join(base + [train_dir, "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base"])
    assert cmds[1] == shlex.join(base + [train_dir.replace("train_base", "test_new"), "--model-dir", train_dir,
                                         "--load-epoch", "50", "--eval-only", "DATASET.NUM_SHOTS", "16",
                                         "DATASET.SUBSAMPLE_CLASSES", "new"])
    assert fake.calls() == []  # nothing ran
    # grid from a YAML file (flags still override), two calibrators
    grid = fake.tmp / "grid.yaml"
    grid.write_text("datasets: [dtd]\nseeds: [3]\nmethods: [coop]\ncalibs: [none, tcpt]\nshots: 4\n")
    assert sweep.main(["--repo-root", fake.root, "--output", fake.out, "--grid", str(grid), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# 2 units, 0 finished, 2 to run" in out
    assert "shots_4/CoOp/vit_b16_ep50_ctxv1_tcpt/seed3" in out and "--calib-config-file" in out
    # a missing preset is a clear error
    assert sweep.main(fake.args + ["--calibs", "nope", "--dry-run"]) == 2
    assert "calibration preset 'nope' not found" in capsys.readouterr().err


def test_local_runs_all_then_skips(fake, capsys):
    assert sweep.main(fake.args + ["--gpus", "none", "--workers", "2"]) == 0
    assert sorted(fake.calls()) == sorted(ALL) and finished_steps(fake.out) == ALL
    # train before test within each unit
    calls = fake.calls()
    for d in ("dtd", "eurosat"):
        for s in (1, 2):
            assert calls.index((d, s, "base")) < calls.index((d, s, "new"))
    capsys.readouterr()
    assert sweep.main(fake.args + ["--gpus", "none"]) == 0
    assert "# 4 units, 4 finished, 0 to run" in capsys.readouterr().out
    assert len(fake.calls()) == 8
    assert sweep.main(fake.args + ["--dry-run"]) == 0
    assert capsys.readouterr().out.count("# skip (finished)") == 4


def test_gpu_slots(fake):
    assert sweep_executors.make_slots(["0", "1"], runs_per_gpu=2) == ["0", "0", "1", "1"]
    assert sweep_executors.make_slots([], workers=3) == [None, None, None]
    assert sweep.main(fake.args + ["--gpus", "0,1"]) == 0
    with open(fake.log) as fh:
        cvd = {json.loads(line)["cvd"] for line in fh}
    assert cvd <= {"0", "1"} and cvd


def test_restart_after_failure_runs_only_unfinished(fake, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "eurosat/2/base,dtd/1/new")
    assert sweep.main(fake.args + ["--gpus", "none"]) == 1
    first = fake.calls()
    assert len(first) == 7  # eurosat/2: train failed, its test never started
    assert finished_steps(fake.out) == ALL - {("eurosat", 2, "base"), ("eurosat", 2, "new"), ("dtd", 1, "new")}
    monkeypatch.delenv("FAKE_FAIL")
    assert sweep.main(fake.args + ["--gpus", "none"]) == 0
    assert sorted(fake.calls()[7:]) == sorted([("dtd", 1, "new"), ("eurosat", 2, "base"), ("eurosat", 2, "new")])
    assert finished_steps(fake.out) == ALL


def test_killed_sweep_restarts_only_unfinished(fake):
    """Kill the whole sweep (process group, SIGKILL) after the first units finish, then re-run."""
    env = dict(os.environ, FAKE_SLEEP="0.4")
    cmd = [PY, os.path.join(REPO, "scripts", "sweep.py")] + fake.args + ["--gpus", "none"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        t0 = time.time()
        while len(finished_steps(fake.out)) < 3 and time.time() - t0 < 60:
            time.sleep(0.05)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    done = finished_steps(fake.out)
    assert 3 <= len(done) < 8, done
    n_before = len(fake.calls())
    p = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    rerun = fake.calls()[n_before:]
    assert sorted(rerun) == sorted(ALL - done)  # only what was unfinished, each once
    assert finished_steps(fake.out) == ALL


def test_sigterm_stops_queue_and_children(fake):
    """SIGTERM to the sweep terminates the running command; the run stays unfinished."""
    env = dict(os.environ, FAKE_SLEEP="30")
    cmd = [PY, os.path.join(REPO, "scripts", "sweep.py")] + fake.args + ["--gpus", "none"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.time()
    while not fake.calls() and time.time() - t0 < 30:
        time.sleep(0.05)
    time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 130 and "[interrupted]" in out
    assert time.time() - t0 < 25 and finished_steps(fake.out) == set()


def test_submitit_local(fake, capsys):
    submitit = pytest.importorskip("submitit", reason="submitit is not installed")
    assert submitit is not None
    rc = sweep.main(fake.args + ["--executor", "submitit-local", "--timeout-min", "2",
                                 "--submitit-folder", str(fake.tmp / "submitit")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.count("[submitted]") == 4 and "# 4 ok, 0 failed" in out
    assert finished_steps(fake.out) == ALL and sorted(fake.calls()) == sorted(ALL)
    # the unit logs hold the commands
    log = os.path.join(fake.out, "sweep_logs", "CoOp", "vit_b16_ep50_ctxv1", "dtd_shots16_seed1.log")
    assert "--load-epoch 50" in open(log).read()


def test_slurm_parameters(fake, tmp_path, monkeypatch):
    """The sbatch script submitit would submit (a fake ``srun`` makes submitit believe it is on Slurm)."""
    pytest.importorskip("submitit", reason="submitit is not installed")
    bindir = tmp_path / "bin"
    os.makedirs(bindir)
    (bindir / "srun").write_text("#!/bin/sh\nexit 0\n")
    os.chmod(bindir / "srun", 0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    args = sweep.build_parser().parse_args(["--executor", "slurm", "--slurm-partition", "gpu", "--mem-gb", "32",
                                            "--timeout-min", "90", "--slurm-extra", "account=abc", "--gpus-per-job", "1"])
    ex = sweep_executors.make_executor("slurm", str(tmp_path / "sl"), args)
    text = ex._executor._make_submission_file_text("CMD", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --mem=32GB", "#SBATCH --time=90", "#SBATCH --account=abc",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=8"):
        assert line in text
    # the unit script skips finished steps with the same rule as the bash scripts
    (r,) = sweep.expand_grid({"datasets": ["dtd"], "seeds": [1], "methods": ["coop"], "output": fake.out},
                             root=fake.root)
    script = sweep_executors.unit_script(r)
    assert script.count("if ! grep -Eq") == 2 and shlex.join(r.test_cmd) in script
    os.makedirs(r.train_dir)
    with open(os.path.join(r.train_dir, "results.json"), "w") as f:
        json.dump({"status": "finished"}, f)
    p = subprocess.run(["bash", "-c", script], env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and fake.calls() == [("dtd", 1, "new")]
