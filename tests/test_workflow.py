"""What users of the forks look for in a run folder (issue 28): Dassl's arguments block at the top of
``log.txt``, ``model_dir`` in ``results.json``, per-epoch curves (``curves.csv``) that a resume keeps
consistent with the checkpoints, and reliability diagrams titled by trainer, calibrator, dataset and
split."""
import csv
import os

import tests.engine_fixtures  # noqa: F401  (registers EngineTiny)
from tests.fault_fixtures import results, run_process
from tests.runs import cli, tiny_args, world_coop_args


def _rows(out):
    with open(os.path.join(out, "curves.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_log_starts_with_the_arguments_and_results_name_the_model_dir(tmp_path, capsys):
    from tests.dataset_fixtures import make_dtd

    root = str(tmp_path / "data")
    make_dtd(root)
    out = str(tmp_path / "out")
    code, _, err = cli(tiny_args(root, out, "TEST.FINAL_MODEL", "best_val", epochs=2), capsys)
    assert code == 0, err
    with open(os.path.join(out, "log.txt")) as f:
        head = f.read().splitlines()
    assert head[:3] == ["***************", "** Arguments **", "***************"]
    assert f"output_dir: {out}" in head[:30] and "seed: 1" in head[:30]
    assert head.index("** Config **") > head.index("** Arguments **")
    assert results(out)["model_dir"] == os.path.abspath(out)
    rows = _rows(out)
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["val"] and r["loss"] and r["lr"] for r in rows)
    ev = str(tmp_path / "ev")
    code, _, err = cli(["--eval-only", "--model-dir", out] + tiny_args(root, ev, epochs=2), capsys)
    assert code == 0 and results(ev)["model_dir"] == os.path.abspath(out)


def test_curves_survive_a_resume(tmp_path):
    """Killed mid-epoch 2 and resumed: the same rows as an uninterrupted run (all but the times)."""
    env = {"CPT_CACHE_DIR": str(tmp_path / "cache")}
    data = str(tmp_path / "data")
    os.makedirs(data)
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    assert run_process(world_coop_args(data, ref), env=env).returncode == 0
    assert run_process(world_coop_args(data, out), env=dict(env, CPT_FAULT="batch:6")).returncode == -9
    assert [r["epoch"] for r in _rows(out)] == ["1"]
    assert run_process(world_coop_args(data, out), env=env).returncode == 0
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert strip(_rows(out)) == strip(_rows(ref)) and len(_rows(ref)) == 3


def test_reliability_diagram_title_names_the_run(tmp_path, capsys, monkeypatch):
    from cpt.calibration import plots
    from tests.dataset_fixtures import make_dtd

    titles = []
    monkeypatch.setattr(plots, "save_reliability_diagram", lambda *a, title="", **k: titles.append(title))
    root = str(tmp_path / "data")
    make_dtd(root)
    out = str(tmp_path / "out")
    argv = tiny_args(root, out, "TEST.RELIABILITY_DIAGRAM", "True", "CALIB.POSTHOC", "temperature")
    code, _, err = cli(argv, capsys)
    assert code == 0, err
    assert titles == ["EngineTiny + temperature on DescribableTextures (all, test)"]
