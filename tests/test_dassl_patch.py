"""dassl_patches: install into a minimal fake dassl/evaluation tree, import it, check metrics."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cpt.calibration import metrics as M

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "dassl_patches" / "install.py"

ORIGINAL = '''"""upstream evaluator stand-in"""
from .build import EVALUATOR_REGISTRY


class EvaluatorBase:
    def __init__(self, cfg):
        self.cfg = cfg


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    UPSTREAM = True
'''

BUILD = '''
class Registry:
    def __init__(self, name):
        self._name = name
        self._obj_map = {}

    def register(self, obj=None):
        def deco(cls):
            assert cls.__name__ not in self._obj_map, cls.__name__
            self._obj_map[cls.__name__] = cls
            return cls
        return deco if obj is None else deco(obj)

    def get(self, name):
        return self._obj_map[name]

    def registered_names(self):
        return list(self._obj_map)


EVALUATOR_REGISTRY = Registry("EVALUATOR")


def build_evaluator(cfg, **kwargs):
    return EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)(cfg, **kwargs)
'''

INIT = '''from .build import build_evaluator, EVALUATOR_REGISTRY
from .evaluator import EvaluatorBase, Classification
'''


def _fake_dassl(tmp_path):
    ev = tmp_path / "Dassl.pytorch" / "dassl" / "evaluation"
    ev.mkdir(parents=True)
    (ev.parent / "__init__.py").write_text("")
    (ev / "__init__.py").write_text(INIT)
    (ev / "build.py").write_text(BUILD)
    (ev / "evaluator.py").write_text(ORIGINAL)
    return tmp_path / "Dassl.pytorch", ev


def _run(args, env_extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env_extra or "", env.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, str(INSTALL), *args], capture_output=True, text=True, env=env)


class _Node:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _upstream_cfg(tmp_path, per_class=False, cmat=False):
    # upstream Dassl's cfg has no PROXIMITY_* keys: the patch must fall back to defaults
    return _Node(TEST=_Node(EVALUATOR="Classification", PER_CLASS_RESULT=per_class, COMPUTE_CMAT=cmat),
                 OUTPUT_DIR=str(tmp_path))


@pytest.fixture
def clean_dassl_modules():
    yield
    for name in [m for m in sys.modules if m == "dassl" or m.startswith("dassl.")]:
        del sys.modules[name]


def test_install_import_metrics_uninstall(tmp_path, monkeypatch, capsys, clean_dassl_modules):
    repo, ev_dir = _fake_dassl(tmp_path)
    r = _run(["--dassl", str(repo)])
    assert r.returncode == 0, r.stderr
    assert (ev_dir / "evaluator.py.orig").read_text() == ORIGINAL
    assert (ev_dir / "evaluator.py").read_text() == (ROOT / "dassl_patches" / "evaluator.py").read_text()
    # re-installing keeps the original backup
    assert _run(["--dassl", str(ev_dir.parent)]).returncode == 0
    assert (ev_dir / "evaluator.py.orig").read_text() == ORIGINAL

    monkeypatch.syspath_prepend(str(repo))
    from dassl.evaluation import EVALUATOR_REGISTRY, Classification, EvaluatorBase, build_evaluator

    assert not hasattr(Classification, "UPSTREAM")
    assert EVALUATOR_REGISTRY.get("Classification") is Classification
    assert issubclass(Classification, EvaluatorBase)

    cfg = _upstream_cfg(tmp_path, per_class=True, cmat=True)
    ev = build_evaluator(cfg, lab2cname={i: f"c{i}" for i in range(5)})
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(120, 5, generator=g) * 2
    labels = torch.randint(0, 5, (120,), generator=g)
    feats = torch.randn(120, 8, generator=g)
    for s in range(0, 120, 40):  # upstream trainers call process(output, label); ours may add features
        ev.process(logits[s:s + 40], labels[s:s + 40], feats[s:s + 40])
    res = ev.evaluate()
    assert list(res) == ["accuracy", "error_rate", "macro_f1", "ece", "mce", "adaptive_ece", "piece",
                         "mce_max", "nll", "brier", "perclass_accuracy"]
    conf, correct = M.confidences_from_probs(logits.double(), labels, from_logits=True)
    prox = M.knn_proximity(torch.nn.functional.normalize(feats, dim=1), k=10).double().numpy()
    assert res["accuracy"] == pytest.approx(100 * correct.mean())
    assert res["ece"] == pytest.approx(100 * M.ece(conf, correct), abs=1e-9)
    assert res["mce"] == pytest.approx(100 * M.mce(conf, correct), abs=1e-9)
    assert res["adaptive_ece"] == pytest.approx(100 * M.adaptive_ece(conf, correct), abs=1e-9)
    assert res["piece"] == pytest.approx(100 * M.piece(conf, correct, prox), abs=1e-7)
    assert res["mce_max"] == pytest.approx(100 * M.mce(conf, correct, weighted=False), abs=1e-9)
    assert res["nll"] == pytest.approx(100 * M.nll(logits.double(), labels), abs=1e-9)
    out = capsys.readouterr().out
    assert "=> result\n* total: 120\n" in out and "* accuracy: " in out and "* error: " in out
    assert (tmp_path / "cmat.pt").exists() and ev.cmat.shape == (5, 5)

    # upstream call signature, no features: no piece
    ev.reset()
    ev.process(logits, labels)
    assert "piece" not in ev.evaluate()

    r = _run(["--uninstall", "--dassl", str(repo)])
    assert r.returncode == 0, r.stderr
    assert (ev_dir / "evaluator.py").read_text() == ORIGINAL
    assert not (ev_dir / "evaluator.py.orig").exists()


def test_install_finds_importable_dassl(tmp_path):
    repo, ev_dir = _fake_dassl(tmp_path)
    r = _run([], env_extra=str(repo))
    assert r.returncode == 0, r.stderr
    assert "installed" in r.stdout and (ev_dir / "evaluator.py.orig").exists()
    code = textwrap.dedent("""
        from dassl.evaluation import Classification
        print(Classification.__module__, hasattr(Classification, "set_proximity_reference"))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo), str(ROOT)]))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["dassl.evaluation.evaluator", "True"]
    assert _run(["--uninstall"], env_extra=str(repo)).returncode == 0
    assert (ev_dir / "evaluator.py").read_text() == ORIGINAL


def test_install_errors(tmp_path):
    r = _run(["--dassl", str(tmp_path / "nowhere")])
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "no dassl/evaluation/" in r.stderr
    repo, _ = _fake_dassl(tmp_path)
    r = _run(["--uninstall", "--dassl", str(repo)])
    assert r.returncode == 1 and "no backup" in r.stderr
