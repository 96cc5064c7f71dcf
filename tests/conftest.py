import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

_missing = []
for _mod in ("torch", "torchvision", "open_clip", "yacs", "numpy", "scipy", "sklearn", "matplotlib", "PIL"):
    try:
        __import__(_mod)
    except ImportError:
        _missing.append(_mod)
if _missing:  # one clear message instead of an import error per test module
    pytest.exit(f"{sys.executable} lacks {', '.join(_missing)}: install the project first "
                "(python3 -m venv .venv && .venv/bin/pip install -r requirements.txt) and run the suite "
                "with .venv/bin/python -m pytest tests -q", returncode=4)

import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own cache directory unless it sets one itself."""
    monkeypatch.setenv("CPT_CACHE_DIR", str(tmp_path / "cpt-cache"))
    yield
