"""A run is what its config says: tables never average seeds of different configurations, and the
drivers refuse a finished run whose recorded options differ from the command's (issue 26).

The runs are fake ``results.json`` files (tests/fake_runs.py) stamped with the real fingerprint
and identity of the command the drivers build for them (``cpt.cli.identity_of_argv``): CoOp
``world_ep50`` on the offline world, 1 shot; seeds 1-3 with ``OPTIM.MAX_EPOCH 1`` (the config's
``OPTIM.LR`` 0.002), seed 4 with ``OPTIM.MAX_EPOCH 2 OPTIM.LR 0.02``. Nothing is trained: the
drivers get ``PYTHON=false``, so a run they did start would fail the test.
"""
import json
import os
import shutil
import sys

import pytest

from cpt.cli import catalog, identity_of_argv
from cpt.cli.results import parse as pr
from tests.fake_runs import write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import drive  # noqa: E402
import sweep  # noqa: E402

ONE = ("OPTIM.MAX_EPOCH", "1")
TWO = ("OPTIM.MAX_EPOCH", "2", "OPTIM.LR", "0.02")
ROW_ONE = "shapeworld (OPTIM.LR=0.002, OPTIM.MAX_EPOCH=1)"
ROW_TWO = "shapeworld (OPTIM.LR=0.02, OPTIM.MAX_EPOCH=2)"
DIFF = "OPTIM.LR 0.002 (seeds 1 2 3) vs 0.02 (seed 4); OPTIM.MAX_EPOCH 1 (seeds 1 2 3) vs 2 (seed 4)"


def setup(out, opts):
    return catalog.Setup.resolve(REPO, "coop", "world_ep50", shots=1, output=str(out), data=str(out / "data"),
                                 python="false", opts=tuple(opts))


def finished(s, split, seed, acc, ece, stamp=True):
    """A finished fake run of ``s`` (train_base or test_new); ``stamp``: with the fingerprint and
    identity of the command the drivers would run for it."""
    sub = "base" if split == "train_base" else "new"
    d = s.run_dir("base2new", split, "shapeworld", seed)
    write_results(d, "CoOp", "world_ep50", "shapeworld", seed, sub, metrics={"accuracy": acc, "ece": ece}, shots=1)
    if stamp:
        model = s.run_dir("base2new", "train_base", "shapeworld", seed) if sub == "new" else None
        identity, fp, _ = identity_of_argv(s.command("shapeworld", seed, d, sub, model)[2:])
        with open(os.path.join(d, "results.json")) as f:
            res = json.load(f)
        res.update(fingerprint=fp, identity=identity)
        with open(os.path.join(d, "results.json"), "w") as f:
            json.dump(res, f)
    return d


# seed -> (base acc, base ece, new acc, new ece)
METRICS = {1: (81, 2, 61, 5), 2: (82, 3, 62, 6), 3: (83, 4, 63, 7), 4: (90, 9, 70, 10)}


def seeds(out, opts, which, stamp=True):
    """Finished base and new runs of ``which`` seeds with ``opts`` (:data:`METRICS`)."""
    s = setup(out, opts)
    for seed in which:
        ba, be, na, ne = METRICS[seed]
        finished(s, "train_base", seed, ba, be, stamp)
        finished(s, "test_new", seed, na, ne, stamp)
    return s


@pytest.fixture
def mixed(tmp_path):
    """Seeds 1-3 with ONE, then seed 4 with TWO into the same output (the bug of issue 26)."""
    seeds(tmp_path, ONE, (1, 2, 3))
    seeds(tmp_path, TWO, (4,))
    return tmp_path


def parse(capsys, *args):
    rc = pr.main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_two_configurations_get_their_own_rows(mixed, capsys):
    rc, out, err = parse(capsys, mixed)
    assert rc == 0, err
    lines = out.splitlines()
    assert f"| {ROW_ONE} | 82.00 ± 1.00 | 62.00 ± 1.00 | 70.61 | 3.00 ± 1.00 | 6.00 ± 1.00 | 3 |" in lines
    assert f"| {ROW_TWO} | 90.00 | 70.00 | 78.75 | 9.00 | 10.00 | 1 |" in lines
    assert "| **Average** | - | - | - | - | - |  |" in lines  # never averaged across configurations
    assert f"- CoOp/world_ep50/none/shots_1 shapeworld: 2 configurations (one row each): {DIFF}" in lines
    # csv: one row per configuration, its label in a last column
    rc, out, _ = parse(capsys, mixed, "--format", "csv")
    rows = out.splitlines()
    assert rows[0].endswith(",n_seeds,n_base,n_new,variant")
    assert rows[1].startswith("shapeworld,82.0000,1.0000,62.0000,") and rows[1].endswith(f',3,3,3,"{ROW_ONE[12:-1]}"')
    assert rows[2].startswith("shapeworld,90.0000,,70.0000,") and rows[2].endswith(f',1,1,1,"{ROW_TWO[12:-1]}"')
    # wide: a column per configuration
    rc, out, _ = parse(capsys, mixed, "--layout", "wide")
    assert "| Method | Calibration | Metric | shapeworld (OPTIM.LR=0.002, OPTIM.MAX_EPOCH=1) | shapeworld " \
           "(OPTIM.LR=0.02, OPTIM.MAX_EPOCH=2) | Avg |" in out
    assert "| CoOp (world_ep50) | none | Acc | 82.00 | 90.00 | - |" in out


def test_strict_fails_naming_the_keys(mixed, capsys):
    rc, _, err = parse(capsys, mixed, "--strict")
    assert rc == 2
    assert err.splitlines() == [f"error: --strict: CoOp/world_ep50/none/shots_1 shapeworld: 2 configurations (one "
                                f"row each): {DIFF}; keep one configuration per OUTPUT (or pick its seeds with "
                                "--seeds)"]
    # --seeds picks one configuration: strict passes
    rc, out, err = parse(capsys, mixed, "--strict", "--seeds", "1", "2", "3")
    assert rc == 0 and not err and "| shapeworld | 82.00 ± 1.00 |" in out


def test_one_fingerprint_reads_as_before(tmp_path, capsys):
    """Seeds that share a fingerprint give exactly the output of the same runs without one."""
    seeds(tmp_path / "new", ONE, (1, 2, 3))
    seeds(tmp_path / "old", ONE, (1, 2, 3), stamp=False)
    for args in ([], ["--format", "csv"], ["--layout", "wide"], ["--format", "latex", "--strict"]):
        got = parse(capsys, tmp_path / "new", *args)
        assert got == parse(capsys, tmp_path / "old", *args) and got[0] == 0
    md = parse(capsys, tmp_path / "new")[1].splitlines()
    assert "| shapeworld | 82.00 ± 1.00 | 62.00 ± 1.00 | 70.61 | 3.00 ± 1.00 | 6.00 ± 1.00 | 3 |" in md
    assert "| **Average** | **82.00** | **62.00** | **70.61** | **3.00** | **6.00** |  |" in md
    runs = pr.collect_runs(str(tmp_path / "new"))
    assert len({r.fingerprint for r in runs if r.side == "base"}) == 1 and all(r.identity for r in runs)


def test_runs_without_fingerprint_are_one_configuration(tmp_path, capsys):
    """The run of tests/fixtures/run_a8047cc (no fingerprint) and a fingerprinted seed 2: two rows."""
    shutil.copytree(os.path.join(REPO, "tests", "fixtures", "run_a8047cc"), tmp_path / "out")
    s = catalog.Setup.resolve(REPO, "coop", "world_ep50", shots=16, output=str(tmp_path / "out"), data="/d")
    for split, sub, acc in (("train_base", "base", 50.0), ("test_new", "new", 40.0)):
        d = s.run_dir("base2new", split, "shapeworld", 2)
        write_results(d, "CoOp", "world_ep50", "shapeworld", 2, sub, metrics={"accuracy": acc, "ece": 1.0})
        with open(os.path.join(d, "results.json")) as f:
            res = json.load(f)
        res.update(fingerprint="0123456789abcdef", identity={"OPTIM.LR": 0.002})
        with open(os.path.join(d, "results.json"), "w") as f:
            json.dump(res, f)
    rc, out, err = parse(capsys, tmp_path / "out", "--strict")
    assert rc == 2 and "seed 1 recorded no fingerprint" in err
    assert "| shapeworld (fingerprint 0123456789abcdef) | 50.00 | 40.00 | 44.44 | 1.00 | 1.00 | 1 |" in out
    groups, _, _ = pr.summarize(pr.collect_runs(str(tmp_path / "out")), ["acc"])
    rows = groups[("CoOp", "world_ep50", "none", 16)]
    assert [(r["dataset"], r.get("variant"), r["n_seeds"]) for r in rows] == [
        ("shapeworld", "no fingerprint", 1), ("shapeworld", "fingerprint 0123456789abcdef", 1),
        ("average", None, None)]


# ----------------------------------------------------------------------------- the drivers
@pytest.fixture
def env(tmp_path, monkeypatch):
    for k in ("CFG", "CALIB", "OPTS", "LOAD_EPOCH", "DRY_RUN", "GPU", "CPT_PLUGINS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in dict(DATA=str(tmp_path / "data"), OUTPUT=str(tmp_path), DATASETS="shapeworld", SEEDS="1",
                     CFG="world_ep50", SHOTS="1", PYTHON="false").items():
        monkeypatch.setenv(k, v)
    return monkeypatch


def drive_main(env, capsys, action, opts, *args):
    env.setenv("OPTS", " ".join(opts))
    rc = drive.main(["coop", action, *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_driver_refuses_a_finished_run_with_other_opts(tmp_path, env, capsys):
    s = seeds(tmp_path, ONE, (1,))
    train_dir = s.run_dir("base2new", "train_base", "shapeworld", 1)
    rc, out, err = drive_main(env, capsys, "train_datasets", TWO)
    assert rc == 1 and "[skip]" not in out
    assert err.splitlines() == [
        f"error: {train_dir} holds a finished run with other options: OPTIM.LR 0.002 (finished) vs 0.02 (now); "
        "OPTIM.MAX_EPOCH 1 (finished) vs 2 (now); use another OUTPUT (or remove the folder) to run these options",
        "error: failed runs: shapeworld/seed1"]
    rc, _, err = drive_main(env, capsys, "test_datasets", TWO)  # the test step too
    assert rc == 1 and "test_new/shapeworld/shots_1/CoOp/world_ep50/seed1 holds a finished run" in err
    # the same options (and options that cannot change a result) skip it, as before
    for opts in (ONE, ONE + ("DATALOADER.NUM_WORKERS", "4", "TRAIN.PRINT_FREQ", "1")):
        for action in ("train_datasets", "test_datasets"):
            rc, out, err = drive_main(env, capsys, action, opts)
            assert rc == 0 and not err and out.startswith("[skip] finished: ") and "(" not in out
    env.setenv("DRY_RUN", "1")  # a dry run says so too
    rc, out, err = drive_main(env, capsys, "train", TWO, "shapeworld", "1")
    assert rc == 1 and err.startswith(f"error: {train_dir} holds a finished run with other options: ")
    assert drive_main(env, capsys, "train", ONE, "shapeworld", "1")[:2] == (0, f"[skip] finished: {train_dir}\n")


def test_driver_skips_an_old_finished_run(tmp_path, env, capsys):
    seeds(tmp_path, ONE, (1,), stamp=False)
    rc, out, err = drive_main(env, capsys, "train_datasets", TWO)
    assert rc == 0 and not err
    assert out.startswith("[skip] finished: ") and out.rstrip().endswith(
        "/seed1 (an older run without a config fingerprint: options not compared)")


def test_sweep_refuses_a_finished_unit_with_other_opts(tmp_path, env, capsys):
    seeds(tmp_path, ONE, (1,))
    args = ["--output", str(tmp_path), "--datasets", "shapeworld", "--methods", "coop:world_ep50", "--shots", "1",
            "--seeds", "1", "--python", "false", "--gpus", "none"]
    assert sweep.main(args + ["--opts", " ".join(TWO)]) == 1
    out = capsys.readouterr()
    assert "# 1 units, 0 finished, 0 to run, 1 refused" in out.out
    assert "#   failed: CoOp/world_ep50/shapeworld/shots_1/seed1: " in out.out
    assert "holds a finished run with other options: OPTIM.LR 0.002 (finished) vs 0.02 (now)" in out.err
    assert sweep.main(args + ["--opts", " ".join(TWO), "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "# refused (finished with other options): CoOp/world_ep50/shapeworld/shots_1/seed1" in out
    assert sweep.main(args + ["--opts", " ".join(ONE)]) == 0
    assert "# 1 units, 1 finished, 0 to run\n" in capsys.readouterr().out
