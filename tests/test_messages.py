"""Issue 26: messages that name what failed. A failed write names its file (atomic writes and
log.txt, also through train.py with a file size limit), batch sizes are checked before any output,
non-UTF-8 command-line values are refused in one line and cannot break logging, CCR warns at a batch
size that leaves it without gradient, and killed world builds do not pile up in the cache."""
import errno
import glob
import json
import logging
import os
import resource
import signal
import subprocess
import time

import pytest
import torch

import tests.engine_fixtures  # noqa: F401  (registers EngineTiny)
from cpt import datasets  # noqa: F401  (registers the datasets)
from cpt.calibration.fileio import atomic_write_json
from cpt.calibration.losses import ccr_loss
from cpt.calibration.regularizers import build_regularizers
from cpt.datasets import shapeworld, world
from cpt.engine.config import get_cfg_default
from cpt.engine.data import DATASET_REGISTRY
from cpt.engine.runlock import process_start_time
from cpt.engine.utils import get_logger, setup_logger
from tests import test_multilabel_training as ml
from tests.dataset_fixtures import make_dtd
from tests.fault_fixtures import ENGINE_LAUNCHER, PY, assert_one_line, results
from tests.runs import REPO, cli, tiny_args


@pytest.fixture
def dtd(tmp_path):
    root = str(tmp_path / "data")
    make_dtd(root)
    return root


root = ml.root  # the small multi-label world (module-scoped fixture)


# ----------------------------------------------------------------------------- 1. failed writes
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG])
def test_failed_atomic_write_names_the_file(tmp_path, monkeypatch, code):
    path = tmp_path / "out" / "results.json"
    atomic_write_json({"status": "old"}, path)

    def full(fd, data):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError) as info:
        atomic_write_json({"status": "new"}, path)
    monkeypatch.undo()
    assert info.value.errno == code
    assert str(info.value) == f"[Errno {code}] cannot write {path}: {os.strerror(code)}"
    assert json.loads(path.read_text()) == {"status": "old"} and os.listdir(path.parent) == ["results.json"]


def _fsize_limit(limit):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_file_size_limit_names_the_file(tmp_path):
    """A real EFBIG from write(2) (``RLIMIT_FSIZE``), not a mock."""
    path = tmp_path / "big.bin"
    code = f"from cpt.calibration.fileio import atomic_write_bytes; atomic_write_bytes(b'x' * 100000, {str(path)!r})"
    r = subprocess.run([PY, "-c", code], cwd=REPO, capture_output=True, text=True, preexec_fn=_fsize_limit(4096))
    assert f"OSError: [Errno 27] cannot write {path}: File too large" in r.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("victim", ["model/model.pth.tar-1", "log.txt"])
def test_train_py_under_a_file_size_limit(dtd, tmp_path, victim):
    """A 16 KB file size limit: EngineTiny's 19 KB checkpoint fails (its 4 KB log.txt and 3 KB
    results.json fit), or the log does when it already holds 20 KB (it is appended to); either way
    one line naming the file."""
    out = str(tmp_path / "out")
    if victim == "log.txt":
        os.makedirs(out)
        with open(os.path.join(out, victim), "w") as f:
            f.write("an earlier run's log\n" * 1000)
    env = dict(os.environ, OMP_NUM_THREADS="1", CPT_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("CPT_DEBUG", None)
    r = subprocess.run([PY, ENGINE_LAUNCHER, *tiny_args(dtd, out)], env=env, cwd=REPO, capture_output=True, text=True,
                       timeout=300, preexec_fn=_fsize_limit(16384))
    line = assert_one_line(r.returncode, r.stdout, r.stderr)
    what = "log file " if victim == "log.txt" else ""
    assert line == f"error: OSError: [Errno 27] cannot write {what}{os.path.join(out, victim)}: File too large"
    assert "Logging error" not in r.stderr
    if victim != "log.txt":
        assert results(out)["status"] == "failed" and results(out)["error"] in line


def test_log_file_write_error_raises_naming_the_file(tmp_path, capsys):
    logger = setup_logger(str(tmp_path), name="cpt.test_messages")
    handler = next(h for h in logger.handlers if isinstance(h, logging.FileHandler))

    class Full:
        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def flush(self):
            pass

    real, handler.stream = handler.stream, Full()
    try:
        with pytest.raises(OSError) as info:
            logger.info("epoch 1")
    finally:
        handler.stream = real
        setup_logger(None, name="cpt.test_messages")
    assert info.value.errno == errno.ENOSPC
    assert str(info.value) == f"[Errno 28] cannot write log file {tmp_path / 'log.txt'}: No space left on device"
    assert "Logging error" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- 2. batch sizes
@pytest.mark.parametrize("key,value", [("DATALOADER.TRAIN_X.BATCH_SIZE", "0"), ("DATALOADER.TEST.BATCH_SIZE", "-3")])
def test_batch_size_below_one_before_any_output(capsys, dtd, tmp_path, key, value):
    out = str(tmp_path / "out")
    line = assert_one_line(*cli(tiny_args(dtd, out, key, value), capsys))
    assert line == f"error: ConfigError: {key} must be an int >= 1 (images per batch), got {value}"
    assert not os.path.exists(out)


# ----------------------------------------------------------------------------- 3. non-UTF-8 text
def test_non_utf8_value_is_refused_in_one_line(dtd, tmp_path):
    """Through a real process: the byte 0xff reaches Python as the surrogate escape '\\udcff'."""
    out = str(tmp_path / "out")
    argv = [os.fsencode(a) for a in tiny_args(dtd, out)] + [b"OPTIM.NAME", b"sg\xffd"]
    r = subprocess.run([PY, ENGINE_LAUNCHER, *argv], cwd=REPO, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, CPT_CACHE_DIR=str(tmp_path / "cache")))
    line = assert_one_line(r.returncode, r.stdout, r.stderr)
    assert line == r"error: ConfigError: command line: OPTIM.NAME value 'sg\xffd' is not valid UTF-8 text"
    assert not os.path.exists(out)


def test_non_utf8_key_is_refused(capsys, dtd, tmp_path):
    line = assert_one_line(*cli(tiny_args(dtd, str(tmp_path / "o"), "OPTIM.L\udcffR", "0.1"), capsys))
    assert line == r"error: ConfigError: command line: key 'OPTIM.L\xffR' is not valid UTF-8 text"


def test_non_utf8_output_path_runs_and_logs(capsys, dtd, tmp_path):
    """A path flag may hold any bytes (Linux paths are bytes): the run finishes, log lines show the
    byte escaped, logging prints no traceback."""
    out = os.path.join(str(tmp_path), "out\udcff")
    code, stdout, err = cli(tiny_args(dtd, out), capsys)
    assert code == 0 and "Logging error" not in err and "Traceback" not in err, err
    assert results(out)["status"] == "finished"
    with open(os.path.join(out, "log.txt"), encoding="utf-8") as f:  # valid UTF-8 throughout
        f.read()
    logger = setup_logger(out, name="cpt.test_messages")
    logger.info(f"saved to {out}")
    setup_logger(None, name="cpt.test_messages")
    with open(os.path.join(out, "log.txt"), encoding="utf-8") as f:
        assert f.read().splitlines()[-1] == f"saved to {tmp_path}/out\\udcff"
    assert "Logging error" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- 4. CCR's batch size
def test_ccr_has_no_gradient_below_three_samples():
    """Why the warning says 3: at 1 no pair is defined (the term is 0); at 2 every defined pair's
    correlation is +1 or -1 (a nonzero constant); at 3 there is a gradient."""
    torch.manual_seed(0)
    sim = torch.eye(6, dtype=torch.float64) * 0.5 + 0.5
    grads = {}
    for n in (1, 2, 3):
        p = torch.rand(n, 6, dtype=torch.float64, requires_grad=True)
        loss, _ = ccr_loss(p, torch.zeros(n, 6, dtype=torch.long), sim, return_count=True)
        loss.backward()
        grads[n] = (float(loss.detach()), float(p.grad.abs().max()))
    assert grads[1] == (0.0, 0.0)
    assert grads[2][0] > 0 and grads[2][1] < 1e-9
    assert grads[3][1] > 1e-3
    ccr = build_regularizers(["ccr"])[0]
    assert [ccr.batch_warning(b) is not None for b in (1, 2, 3, 16)] == [True, True, False, False]
    assert build_regularizers(["tcpt"])[0].batch_warning(1) is None


@pytest.mark.parametrize("batch", [1, 2])
def test_ccr_warns_once_at_build(root, tmp_path, batch):
    out = str(tmp_path / "coop")
    ml.run(root, out, "CoOp", *ml.COOP_BCE, "CALIB.METHOD", "['ccr']", "DATALOADER.TRAIN_X.BATCH_SIZE", str(batch),
           flags=["--no-train"])
    with open(os.path.join(out, "log.txt")) as f:
        hits = [ln for ln in f if "does nothing" in ln]
    why = ("defines a pair only from 2 such samples, so every step adds 0" if batch == 1 else
           "over 2 samples that correlation is always +1 or -1, so the term is a constant")
    assert hits == [f"Warning: CALIB.METHOD ccr at DATALOADER.TRAIN_X.BATCH_SIZE {batch} does nothing: CCR "
                    f"correlates two classes' probabilities over the samples of a batch where both are inactive "
                    f"(label 0) and {why} without gradient; use a batch size of 3 or more\n"]


# ----------------------------------------------------------------------------- 5. killed world builds
def _fake_build(folder, name, record=None, age_s=0):
    path = os.path.join(folder, f".building-{name}")
    os.makedirs(os.path.join(path, "images"))
    if record is not None:
        with open(os.path.join(path, shapeworld.BUILDER), "w") as f:
            json.dump(record, f)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_stale_world_builds_are_removed(tmp_path):
    cfg = get_cfg_default()
    cfg.CACHE_DIR = str(tmp_path / "cache")
    cfg.DATASET.NAME, cfg.DATASET.VARIANT = "ShapeWorldML", "cast"
    split_file = "split_ShapeWorldML.json"

    def small(d):
        world.materialize_multilabel_split(d, variant="cast", seed=world.WORLD_SEED, split_file=split_file,
                                           n_train=8, n_val=4, n_test=4)

    live = shapeworld._materialised_dir(cfg, "ShapeWorldML", "cast", small, split_file)
    folder = os.path.dirname(live)
    assert os.listdir(folder) == [os.path.basename(live)]  # the build folder became the world
    assert not os.path.exists(os.path.join(live, shapeworld.BUILDER))
    before = sorted(glob.glob(os.path.join(live, "**"), recursive=True))

    dead = subprocess.run([PY, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = shapeworld.socket.gethostname()
    me = os.getpid()
    stale = [_fake_build(folder, "dead", {"pid": dead_pid, "host": host, "start": None}),
             _fake_build(folder, "reused", {"pid": me, "host": host, "start": process_start_time(me) + 1}),
             _fake_build(folder, "old", None, age_s=2 * 86400),
             _fake_build(folder, "foreign-old", {"pid": 1, "host": "elsewhere"}, age_s=2 * 86400)]
    kept = [_fake_build(folder, "mine", {"pid": me, "host": host, "start": process_start_time(me)}),
            _fake_build(folder, "fresh", None),
            _fake_build(folder, "foreign", {"pid": 1, "host": "elsewhere"}, age_s=3600)]

    logger, seen = get_logger(), _Records()
    logger.addHandler(seen)
    try:
        ds = DATASET_REGISTRY.get("ShapeWorldML")(cfg)
    finally:
        logger.removeHandler(seen)
    assert len(ds.train_x) == 8
    assert sorted(glob.glob(os.path.join(folder, ".building-*"))) == sorted(kept)
    assert sorted(glob.glob(os.path.join(live, "**"), recursive=True)) == before
    assert [ln for ln in seen.lines if "World cache" in ln] == [
        f"World cache: removed 4 unfinished build folder(s) whose builder is gone: {', '.join(sorted(stale))}"]
