"""Fakes for the script tests: a ``results.json`` as train.py writes it (:func:`write_results`),
and a fake repository whose ``train.py`` is tests/fake_train.py (:func:`fake_repo`)."""
import json
import os
import shutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_results(run_dir, trainer, config, dataset, seed, subsample, calibration="none", metrics=None,
                  status="finished", shots=16, error=None):
    """Write ``run_dir/results.json`` with train.py's fields (metrics only when finished)."""
    os.makedirs(run_dir, exist_ok=True)
    res = {"status": status, "trainer": trainer, "config": config, "dataset": dataset, "shots": shots,
           "seed": seed, "subsample": subsample, "calibration": calibration,
           "metrics": dict(metrics or {}) if status == "finished" else {}, "wall_time_s": 1.0}
    if error:
        res["error"] = error
    with open(os.path.join(run_dir, "results.json"), "w") as f:
        json.dump(res, f)
    return run_dir


def fake_repo(root, configs, datasets, copy=()):
    """A repository at ``root``: ``train.py`` = tests/fake_train.py, ``configs/trainers/<T>/<name>.yaml``
    for each ``(T, name, text)`` of ``configs``, a dataset yaml per name of ``datasets``, the tcpt
    preset, and copies of the project folders named in ``copy``."""
    root = str(root)
    for part in copy:
        shutil.copytree(os.path.join(REPO, part), os.path.join(root, part), ignore=shutil.ignore_patterns("__pycache__"))
    cfg = os.path.join(root, "configs")
    for trainer, name, text in configs:
        os.makedirs(os.path.join(cfg, "trainers", trainer), exist_ok=True)
        with open(os.path.join(cfg, "trainers", trainer, f"{name}.yaml"), "w") as f:
            f.write(text)
    os.makedirs(os.path.join(cfg, "datasets"), exist_ok=True)
    for d in datasets:
        with open(os.path.join(cfg, "datasets", f"{d}.yaml"), "w") as f:
            f.write("DATASET:\n  NAME: X\n")
    os.makedirs(os.path.join(cfg, "calibration"), exist_ok=True)
    with open(os.path.join(cfg, "calibration", "tcpt.yaml"), "w") as f:
        f.write("CALIB:\n  NAME: tcpt\n")
    shutil.copy(os.path.join(REPO, "tests", "fake_train.py"), os.path.join(root, "train.py"))
    return root


def read_calls(log):
    """The argv records tests/fake_train.py appended to ``log`` (one JSON object per line)."""
    if not os.path.exists(log):
        return []
    with open(log) as fh:
        return [json.loads(line) for line in fh]
