"""Faults with nothing lost: world CoOp runs (tiny CLIP, 2 shots x 32 base classes = 4 batches per
epoch, 3 epochs) killed and resumed with the same command end with the metrics of an uninterrupted run.

Faults are injected with ``CPT_FAULT`` (engine/faults.py): the process signals itself at a given
training batch or halfway through writing a checkpoint's temporary file, so the tests do not depend
on timing. Every metric is compared with ``==`` (all digits).
"""
import os

import pytest
import torch

from tests.fault_fixtures import checkpoints, results, run_process
from tests.runs import world_coop_args

BATCHES_PER_EPOCH = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Shared data root and cache (the world is materialised once) and the uninterrupted reference run."""
    tmp = tmp_path_factory.mktemp("faults")
    env = {"CPT_CACHE_DIR": str(tmp / "cache")}
    data = str(tmp / "data")
    os.makedirs(data)
    ref = str(tmp / "reference")
    p = run_process(world_coop_args(data, ref), env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return tmp, env, data, ref


def _model_dir(out):
    dirs = [os.path.dirname(p) for p in checkpoints(out)] or [
        os.path.join(out, d) for d in os.listdir(out) if os.path.isfile(os.path.join(out, d, "checkpoint"))]
    assert len(set(dirs)) == 1, dirs
    return dirs[0]


def _final_weights(out):
    path = os.path.join(_model_dir(out), "model.pth.tar-3")
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _marker(out):
    with open(os.path.join(_model_dir(out), "checkpoint")) as f:
        return f.read().strip()


def _finished_like_reference(out, ref):
    res, want = results(out), results(ref)
    assert res["status"] == "finished" and res["metrics"] == want["metrics"]
    mine, theirs = _final_weights(out), _final_weights(ref)
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    return res["metrics"]


def test_same_command_twice_gives_identical_metrics(world):
    tmp, env, data, ref = world
    again = str(tmp / "again")
    p = run_process(world_coop_args(data, again), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    metrics = _finished_like_reference(again, ref)
    assert metrics["accuracy"] > 100 / 32  # it learned something: above chance on 32 classes
    other_seed = str(tmp / "seed2")
    p = run_process(world_coop_args(data, other_seed, seed=2), env=env)
    assert p.returncode == 0 and results(other_seed)["metrics"] != metrics  # the seed matters


def test_sigkill_mid_epoch_and_during_checkpoint_write_then_resume(world):
    tmp, env, data, ref = world
    out = str(tmp / "killed")
    argv = world_coop_args(data, out)
    # 1. SIGKILL at the 2nd batch of epoch 2: epoch 1's checkpoint is complete, nothing else
    p = run_process(argv, env=dict(env, CPT_FAULT=f"batch:{BATCHES_PER_EPOCH + 2}"))
    assert p.returncode == -9 and results(out)["status"] == "running"  # marked at the start (issue 26)
    assert _marker(out) == "model.pth.tar-1" and [os.path.basename(c) for c in checkpoints(out)] == ["model.pth.tar-1"]
    # 2. same command, SIGKILL halfway through writing epoch 2's checkpoint (it resumed from epoch 1)
    p = run_process(argv, env=dict(env, CPT_FAULT="checkpoint_write:1"))
    assert p.returncode == -9 and results(out)["status"] == "running"  # marked at the start (issue 26)
    assert "Resumed from" in p.stdout and "(epoch 1)" in p.stdout
    partial = [f for f in os.listdir(_model_dir(out)) if f.startswith(".tmp-")]
    assert len(partial) == 1 and os.path.getsize(os.path.join(_model_dir(out), partial[0])) > 0
    assert _marker(out) == "model.pth.tar-1" and [os.path.basename(c) for c in checkpoints(out)] == ["model.pth.tar-1"]
    # 3. same command, no fault: resumes from epoch 1 again, removes the partial file, finishes
    p = run_process(argv, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "(epoch 1)" in p.stdout and "a checkpoint write that did not finish" in p.stdout
    assert not [f for f in os.listdir(_model_dir(out)) if f.startswith(".tmp-")]
    assert not os.path.exists(os.path.join(out, ".run.lock"))
    metrics = _finished_like_reference(out, ref)
    print("\nmetric        uninterrupted                killed twice, resumed")
    for k, v in results(ref)["metrics"].items():
        print(f"{k:<13} {v!r:<28} {metrics[k]!r}")


def test_sigint_stops_at_once_says_interrupted_and_resumes(world):
    tmp, env, data, ref = world
    out = str(tmp / "sigint")
    argv = world_coop_args(data, out)
    p = run_process(argv, env=dict(env, CPT_FAULT=f"batch:{BATCHES_PER_EPOCH + 2}:INT"))
    assert p.returncode == 130
    assert p.stderr.strip().splitlines() == [
        "interrupted: results.json says 'interrupted'; re-run the same command to resume"]
    assert "Traceback" not in p.stdout + p.stderr
    res = results(out)
    assert res["status"] == "interrupted" and res["metrics"] == {}
    assert res["error"].startswith("interrupted (SIGINT) in epoch 2;")
    # at once: epoch 2 never finished, no checkpoint of it, the lock is released
    assert "epoch [1/3] batch [4/4]" in p.stdout and "epoch [2/3] batch [4/4]" not in p.stdout
    assert _marker(out) == "model.pth.tar-1" and not os.path.exists(os.path.join(out, ".run.lock"))
    p = run_process(argv, env=env)
    assert p.returncode == 0 and "(epoch 1)" in p.stdout
    _finished_like_reference(out, ref)
