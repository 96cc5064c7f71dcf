"""A run is what its config says (issue 26): the fingerprint guards resume, ``best_val`` survives a
resume, evaluation never changes training, class-specific state stays with its classes, SIGTERM is
SIGINT, and an early checkpoint evaluated with ``--eval-only`` says so.

World CoOp as in tests/test_faults.py (32 base classes, 2 shots, 4 batches per epoch, 3 epochs), run
as processes with faults injected by ``CPT_FAULT``; metrics and weights are compared with ``==``.
"""
import json
import os
import shutil

import pytest
import torch

from tests.fault_fixtures import assert_one_line, checkpoints, results, run_process
from tests.runs import world_coop_args

BATCHES_PER_EPOCH = 4
BEST_VAL = ("TEST.FINAL_MODEL", "best_val")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Data root, cache and the uninterrupted ``best_val`` reference run."""
    tmp = tmp_path_factory.mktemp("identity")
    env = {"CPT_CACHE_DIR": str(tmp / "cache")}
    data = str(tmp / "data")
    os.makedirs(data)
    ref = str(tmp / "reference")
    p = run_process(world_coop_args(data, ref, *BEST_VAL), env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return tmp, env, data, ref


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def _weights(out, name):
    return _load(os.path.join(out, "prompt_learner", name))["state_dict"]


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _snapshot(out):
    """Every file under ``out`` with its bytes (what a refused command must leave as it was)."""
    snap = {}
    for d, _, files in os.walk(out):
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                snap[os.path.relpath(os.path.join(d, f), out)] = fh.read()
    return snap


def _log(out):
    with open(os.path.join(out, "log.txt")) as f:
        return f.read()


def test_checkpoints_and_results_carry_the_identity(world):
    tmp, env, data, ref = world
    res = results(ref)
    ckpt = _load(os.path.join(ref, "prompt_learner", "model.pth.tar-3"))
    assert res["fingerprint"] == ckpt["fingerprint"] and len(res["fingerprint"]) == 16
    assert res["identity"] == ckpt["identity"] and res["identity"]["OPTIM.MAX_EPOCH"] == 3
    assert ckpt["seed"] == 1 and len(ckpt["classnames"]) == 32
    # keys that cannot change a result are not part of it; the seed is compared on its own
    assert not {"OUTPUT_DIR", "DATASET.ROOT", "TRAIN.PRINT_FREQ", "DATALOADER.NUM_WORKERS", "SEED",
                "TEST.CACHE_FEATURES", "TEST.CACHE_MAX_MB", "CACHE_DIR"} & set(res["identity"])
    assert not [k for k in res["identity"] if k.startswith("TRAINER.") and k.split(".")[1] not in ("NAME", "COOP")]


def test_best_val_survives_resume_at_epoch_boundaries_and_mid_epoch(world):
    """Killed mid-epoch 2, then at the start of epoch 3 (after epoch 2's checkpoint), then finished;
    and another run killed at the start of epoch 2: the same ``model-best`` and test metrics."""
    tmp, env, data, ref = world
    ref_best = _load(os.path.join(ref, "prompt_learner", "model-best.pth.tar"))
    for name, faults in (("chain", [f"batch:{BATCHES_PER_EPOCH + 2}", f"batch:{BATCHES_PER_EPOCH + 1}"]),
                         ("boundary", [f"batch:{BATCHES_PER_EPOCH + 1}"])):
        out = str(tmp / f"best_{name}")
        argv = world_coop_args(data, out, *BEST_VAL)
        for fault in faults:  # the batch count restarts in every process
            p = run_process(argv, env=dict(env, CPT_FAULT=fault))
            assert p.returncode == -9, p.stderr[-2000:]
        p = run_process(argv, env=env)
        assert p.returncode == 0, p.stderr[-3000:]
        best = _load(os.path.join(out, "prompt_learner", "model-best.pth.tar"))
        assert best["epoch"] == ref_best["epoch"] and best["val_result"] == ref_best["val_result"], name
        assert _same_weights(best["state_dict"], ref_best["state_dict"]), name
        assert results(out)["metrics"] == results(ref)["metrics"], name


def test_training_does_not_depend_on_the_feature_cache(world):
    """Cold cache, warm cache and no cache: bit-identical weights, validation curve and metrics with
    ``best_val`` validation every epoch."""
    tmp, env, data, ref = world
    cache = os.path.join(env["CPT_CACHE_DIR"], "features")
    outs = {}
    for kind in ("cold", "warm", "off"):
        if kind == "cold":
            shutil.rmtree(cache, ignore_errors=True)
        out = str(tmp / f"cache_{kind}")
        opts = ("TEST.CACHE_FEATURES", "False") if kind == "off" else ()
        p = run_process(world_coop_args(data, out, *BEST_VAL, *opts, epochs=4), env=env)
        assert p.returncode == 0, p.stderr[-3000:]
        outs[kind] = out
    log = {k: _log(o) for k, o in outs.items()}
    assert "computed (not in the cache)" in log["cold"] and "read from the cache" in log["warm"]
    curves = {k: [ln.split("accuracy:")[1] for ln in log[k].splitlines() if "* accuracy:" in ln] for k in outs}
    assert len(curves["cold"]) == 5 and curves["cold"] == curves["warm"] == curves["off"]
    final = {k: _weights(o, "model.pth.tar-4") for k, o in outs.items()}
    assert _same_weights(final["cold"], final["warm"]) and _same_weights(final["cold"], final["off"])
    metrics = [results(o)["metrics"] for o in outs.values()]
    assert metrics[0] == metrics[1] == metrics[2]
    assert results(outs["cold"])["fingerprint"] == results(outs["off"])["fingerprint"]


def test_changed_config_does_not_resume(world, capsys):
    """A finished (or interrupted) run refuses a command with other options, naming each differing
    key with both values; nothing in the folder changes."""
    tmp, env, data, ref = world
    out = str(tmp / "changed")
    p = run_process(world_coop_args(data, out, epochs=2), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    before = _snapshot(out)
    p = run_process(world_coop_args(data, out, "OPTIM.LR", "0.05", "CALIB.METHOD", "['tcpt']", epochs=2), env=env)
    line = assert_one_line(p.returncode, p.stdout, p.stderr)
    assert line.startswith("error: RunMismatch: ") and "belongs to a run with other options" in line
    assert "OPTIM.LR 0.002 (there) vs 0.05 (this command)" in line
    assert "CALIB.METHOD [] (there) vs [\"tcpt\"] (this command)" in line
    assert _snapshot(out) == before
    # another seed into the folder of an interrupted run: refused before the checkpoint is touched
    killed = str(tmp / "changed_seed")
    p = run_process(world_coop_args(data, killed), env=dict(env, CPT_FAULT=f"batch:{BATCHES_PER_EPOCH + 2}"))
    assert p.returncode == -9 and results(killed)["status"] == "running"  # never contradicts the checkpoints
    before = _snapshot(killed)
    p = run_process(world_coop_args(data, killed, seed=2), env=env)
    line = assert_one_line(p.returncode, p.stdout, p.stderr)
    assert "SEED 1 (there) vs 2 (this command)" in line and _snapshot(killed) == before
    # keys that cannot change a result do not block a resume
    p = run_process(world_coop_args(data, killed, "TRAIN.PRINT_FREQ", "1", "TEST.CACHE_FEATURES", "False"), env=env)
    assert p.returncode == 0 and results(killed)["status"] == "finished"


def test_sigterm_is_sigint(world):
    tmp, env, data, ref = world
    out = str(tmp / "sigterm")
    argv = world_coop_args(data, out, *BEST_VAL)
    p = run_process(argv, env=dict(env, CPT_FAULT=f"batch:{BATCHES_PER_EPOCH + 2}:TERM"))
    assert p.returncode == 143, p.stderr[-2000:]
    assert p.stderr.strip().splitlines()[-1].startswith("terminated (SIGTERM)")
    res = results(out)
    assert res["status"] == "interrupted" and res["error"].startswith("interrupted (SIGTERM) in epoch 2")
    assert "Interrupted by SIGTERM in epoch 2" in _log(out)
    p = run_process(argv, env=env)
    assert p.returncode == 0 and results(out)["metrics"] == results(ref)["metrics"]
    assert _same_weights(_weights(out, "model.pth.tar-3"), _weights(ref, "model.pth.tar-3"))


def test_eval_only_on_an_early_checkpoint_says_so(world):
    tmp, env, data, ref = world
    out = str(tmp / "early")
    p = run_process(world_coop_args(data, out), env=dict(env, CPT_FAULT=f"batch:{BATCHES_PER_EPOCH + 1}"))
    assert p.returncode == -9 and [os.path.basename(c) for c in checkpoints(out)] == ["model.pth.tar-1"]
    ev = str(tmp / "early_eval")
    p = run_process(world_coop_args(data, ev, "--eval-only", "--model-dir", out), env=env)  # flags after the pairs
    assert p.returncode == 0, p.stderr[-2000:]
    res = results(ev)
    assert res["status"] == "finished" and res["epoch"] == 1 and res["partial_training"] is True
    assert res["note"] == f"the run in --model-dir {out} trained 1 of OPTIM.MAX_EPOCH 3 epochs (it did not finish); " \
                          "evaluated its epoch 1" and res["note"] in _log(ev)
    full = str(tmp / "full_eval")  # the finished best_val run's model-best is of epoch 1: no note
    p = run_process(["--eval-only", "--model-dir", ref, *world_coop_args(data, full)], env=env)
    assert p.returncode == 0 and results(full)["epoch"] == 1 and "partial_training" not in results(full)


def test_class_specific_context_stays_with_its_classes(world):
    """CSC contexts trained on the base classes refuse the new classes (naming both sizes and the
    first differing name); shared context on the new classes still runs (base-to-new)."""
    tmp, env, data, ref = world
    csc = str(tmp / "csc")
    p = run_process(world_coop_args(data, csc, "TRAINER.COOP.CSC", "True", epochs=1), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    names = results(csc)["classnames"]
    new = str(tmp / "csc_new")
    p = run_process(["--eval-only", "--model-dir", csc] + world_coop_args(
        data, new, "TRAINER.COOP.CSC", "True", "DATASET.SUBSAMPLE_CLASSES", "new", epochs=1), env=env)
    line = assert_one_line(p.returncode, p.stdout, p.stderr)
    assert "holds class-specific parameters (TRAINER.COOP.CSC) of 32 classes, but this run evaluates 32" in line
    assert f"first difference at class 0: {names[0]!r} (checkpoint)" in line
    assert results(new)["status"] == "failed"
    shared = str(tmp / "shared_new")
    p = run_process(["--eval-only", "--model-dir", ref] + world_coop_args(data, shared, "DATASET.SUBSAMPLE_CLASSES",
                                                                          "new"), env=env)
    assert p.returncode == 0 and results(shared)["status"] == "finished"
    with open(os.path.join(shared, "results.json")) as f:
        assert json.load(f)["classnames"] != names


def test_identity_diff_ignores_keys_a_code_change_added():
    """A key only one side has (added with its default by a later version of the code) does not make
    two runs differ for resume and skip; the parser shows it (``include_absent``)."""
    from cpt.engine.identity import format_diff, identity_diff

    old, new = {"OPTIM.LR": 0.002, "N": 1}, {"OPTIM.LR": 0.002, "N": 1, "MODEL.BACKBONE.SHARED_PREFIX": True}
    assert identity_diff(old, new) == []
    assert identity_diff(old, new, include_absent=True) == [("MODEL.BACKBONE.SHARED_PREFIX", "<absent>", True)]
    assert format_diff(identity_diff(old, {**new, "OPTIM.LR": 0.05}), "there", "here") == \
        "OPTIM.LR 0.002 (there) vs 0.05 (here)"
