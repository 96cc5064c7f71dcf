"""The project as one package, ``cpt``: no clash with Hugging Face ``datasets``, runs from any
folder, from a checkout and from an installed copy, and names a module that shadows its own."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZS_ARGS = ["--seed", "1", "--trainer", "ZeroshotCLIP", "--eval-only",
           "--dataset-config-file", "configs/datasets/shapeworld.yaml",
           "--config-file", "configs/trainers/ZeroshotCLIP/world.yaml"]


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(CPT_CACHE_DIR=str(tmp_path / "cache"), **extra)
    return env


def _run(cmd, cwd, env):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _zero_shot(tmp_path, cmd, env):
    """ZeroshotCLIP on the world's base classes, run from a folder outside the repository."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    out = tmp_path / "out"
    r = _run(cmd + ["--root", str(tmp_path / "data"), "--output-dir", str(out)] + ZS_ARGS
             + ["DATASET.SUBSAMPLE_CLASSES", "base"], elsewhere, env)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "finished"
    return res["metrics"]


def test_no_top_level_names_installed():
    """pyproject.toml installs one top-level package, ``cpt``: none of the generic folder names; its
    runtime dependencies leave the test runner and the Slurm client to the extras."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        meta = tomllib.load(f)
    setup = meta["tool"]["setuptools"]
    assert "py-modules" not in setup
    assert sorted({p.split('.')[0] for p in setup["packages"]}) == ['cpt']
    runtime = {d.split(">")[0].split("<")[0].split("=")[0] for d in meta["project"]["dependencies"]}
    assert not runtime & {"pytest", "submitit", "ruff"} and "torch" in runtime
    assert meta["project"]["optional-dependencies"]["test"] == ["pytest>=7.0"]


def test_hugging_face_datasets_side_by_side(tmp_path):
    """With Hugging Face ``datasets`` installed, ``import datasets`` outside the repository is
    theirs, and ``train.py`` run from that folder uses ours (the clash reported in issue 15)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = _run([sys.executable, "-c", "import datasets; print(datasets.__file__); print(hasattr(datasets, 'load_dataset'))"],
             elsewhere, _env(tmp_path))
    if r.returncode != 0 and "No module named 'datasets'" in r.stderr:
        pytest.skip("Hugging Face datasets is not installed (.ci/run installs it)")
    assert r.returncode == 0, r.stderr
    where, has_load = r.stdout.split()
    assert os.path.dirname(where) != os.path.join(ROOT, "datasets") and has_load == "True"
    metrics = _zero_shot(tmp_path, [sys.executable, os.path.join(ROOT, "train.py")], _env(tmp_path))
    assert metrics["accuracy"] == pytest.approx(76.625)  # the README's world zero-shot base accuracy


def test_installed_copy_runs_from_anywhere(tmp_path):
    """``pip install .`` into a folder: the ``cpt-train`` entry point (``cpt.cli``) finds the
    shipped configs and world checkpoint inside the installed copy, with no checkout on the path."""
    target = tmp_path / "site"
    r = _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), ROOT],
             str(tmp_path), _env(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (target / "cpt" / "configs" / "datasets" / "shapeworld.yaml").is_file()
    assert (target / "cpt" / "trainers" / "weights" / "world_tiny.pt").is_file()
    assert not (target / "datasets").exists() and not (target / "trainers").exists()
    entry = [e for e in (target.glob("*.dist-info/entry_points.txt"))]
    assert entry and "cpt-train = cpt.cli:cli" in entry[0].read_text()
    env = _env(tmp_path, PYTHONPATH=str(target))
    r = _run([sys.executable, "-c", "import cpt; print(cpt.PACKAGE_ROOT)"], str(tmp_path), env)
    assert r.stdout.strip() == str(target / "cpt")
    metrics = _zero_shot(tmp_path, [sys.executable, "-m", "cpt.cli"], env)
    assert metrics["accuracy"] == pytest.approx(76.625)


def test_shadowing_module_is_named(tmp_path):
    """A foreign ``cpt`` imported before ``train.py``, or a sub-package answered by another
    module, stops the run with one line that names the intruder, before any work."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "cpt.py").write_text("X = 1\n")
    code = (f"import sys; sys.path.insert(0, {str(fake)!r}); import cpt; import runpy; "
            f"sys.argv = ['train.py', '--trainer', 'ZeroshotCLIP']; "
            f"runpy.run_path({os.path.join(ROOT, 'train.py')!r}, run_name='__main__')")
    r = _run([sys.executable, "-c", code], str(tmp_path), _env(tmp_path))
    assert r.returncode != 0
    assert str(fake / "cpt.py") in r.stderr and "shadows" in r.stderr
    assert "Traceback" not in r.stderr

    stray = tmp_path / "stray" / "engine"
    stray.mkdir(parents=True)
    (stray / "__init__.py").write_text("")
    code = (f"import sys, importlib.util; sys.path.insert(0, {ROOT!r}); import cpt; "
            f"spec = importlib.util.spec_from_file_location('cpt.engine', {str(stray / '__init__.py')!r}); "
            f"m = importlib.util.module_from_spec(spec); sys.modules['cpt.engine'] = m; "
            f"from cpt.cli import cli; cli(['--trainer', 'ZeroshotCLIP'])")
    r = _run([sys.executable, "-c", code], str(tmp_path), _env(tmp_path))
    assert r.returncode == 2
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ImportError: cpt.engine resolves to " + str(stray)), r.stderr
