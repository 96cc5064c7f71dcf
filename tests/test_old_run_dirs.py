"""Run directories written before the redesign (commit a8047cc) are still read by this code.

``tests/fixtures/run_a8047cc`` is a CoOp base-to-new run on the offline world (``world_ep50``, 16
shots, 2 epochs, seed 1) written by the bash drivers of a8047cc: train_base (checkpoint, log,
results.json) and test_new (``--eval-only --model-dir``). Its reliability PNGs were dropped and the
machine paths in its ``log.txt`` files replaced; nothing else was edited.
"""
import json
import os

import pytest

from cpt.cli.results import parse as pr
from tests.runs import REPO, train_main, world_coop_args

OLD = os.path.join(REPO, "tests", "fixtures", "run_a8047cc", "base2new")
TAIL = os.path.join("shapeworld", "shots_16", "CoOp", "world_ep50", "seed1")


def stored(split):
    with open(os.path.join(OLD, split, TAIL, "results.json")) as f:
        return json.load(f)["metrics"]


def test_parser_reads_an_old_run_directory():
    runs = pr.collect_runs(os.path.dirname(OLD))
    assert sorted((r["side"], r["status"]) for r in runs) == [("base", "finished"), ("new", "finished")]
    groups, problems, _ = pr.summarize(runs, ["acc", "ece"])
    assert not problems and list(groups) == [("CoOp", "world_ep50", "none", 16)]
    row = groups[("CoOp", "world_ep50", "none", 16)][0]
    base, new = stored("train_base"), stored("test_new")
    assert row["dataset"] == "shapeworld"
    assert (row["base_acc"], row["new_acc"]) == (base["accuracy"], new["accuracy"])
    assert (row["base_ece"], row["new_ece"]) == (base["ece"], new["ece"])


def test_eval_only_on_an_old_model_dir_gives_its_recorded_metrics(tmp_path):
    data, out = tmp_path / "data", tmp_path / "eval"
    data.mkdir()
    model_dir = os.path.join(OLD, "train_base", TAIL)
    train_main(["--eval-only", "--model-dir", model_dir, "--load-epoch", "2",
                *world_coop_args(data, out, "DATASET.SUBSAMPLE_CLASSES", "new", shots=16)])
    with open(out / "results.json") as f:
        got = json.load(f)
    want = stored("test_new")
    assert got["epoch"] == 2 and set(got["metrics"]) == set(want)
    # Metrics of the argmax predictions are exact. The probability metrics come from a float32
    # forward whose last bits depend on the machine's CPU kernels (one AVX-512 machine's ECE is
    # 1.3e-7 relative off the stored run), so they are checked to 1e-6 relative, far below the
    # two decimals the tables print.
    for key in ("accuracy", "error_rate", "macro_f1"):
        assert got["metrics"][key] == want[key], key
    for key, value in want.items():
        assert got["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
