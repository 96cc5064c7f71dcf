"""Helpers for tests/test_bad_inputs.py and tests/test_faults.py (not a test module).

``run_process`` runs train.py as a separate process (through tests/ddp_launcher.py when it needs
the engine fixtures; the in-process ``cli`` and the argv builders are in tests/runs.py);
``read_only`` makes folders unwritable, also for root
(an audit hook refuses every write under them); ``assert_no_result`` checks that an output
folder holds nothing a later run or the parser would take for a result.
"""
import contextlib
import errno
import glob
import json
import os
import signal
import subprocess
import sys

from tests.runs import REPO

PY = sys.executable
ENGINE_LAUNCHER = os.path.join(REPO, "tests", "ddp_launcher.py")
TRAIN = os.path.join(REPO, "train.py")


def _default_sigint():
    # A shell starts background jobs with SIGINT ignored, and a child inherits that: Python then
    # never raises KeyboardInterrupt. Give the run the disposition a terminal's Ctrl-C meets.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_process(argv, env=None, engine_fixtures=False, timeout=600):
    """train.py as a process (one thread, SIGINT at its default): ``subprocess.CompletedProcess``."""
    e = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    e.pop("CPT_FAULT", None)
    e.pop("CPT_DEBUG", None)
    e.update(env or {})
    script = ENGINE_LAUNCHER if engine_fixtures else TRAIN
    return subprocess.run([PY, script, *map(str, argv)], env=e, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_default_sigint)


def popen(argv, env=None, engine_fixtures=False):
    e = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    e.update(env or {})
    script = ENGINE_LAUNCHER if engine_fixtures else TRAIN
    return subprocess.Popen([PY, script, *map(str, argv)], env=e, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def results(out):
    path = os.path.join(out, "results.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def checkpoints(out):
    """Checkpoint files under ``out`` (``<model>/model.pth.tar-*`` and ``model-best.pth.tar``)."""
    return sorted(glob.glob(os.path.join(out, "*", "model*.pth.tar*")))


def assert_no_result(out):
    """Nothing under ``out`` that the parser, the drivers or a resumed run would take for a result."""
    res = results(out)
    assert res is None or res["status"] != "finished", res
    assert checkpoints(out) == []
    assert not os.path.exists(os.path.join(out, ".run.lock"))


def assert_one_line(code, out, err, expect_code=2):
    """Exit status ``expect_code``, one stderr line starting 'error:', no traceback anywhere."""
    assert code == expect_code, (code, err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
    return lines[0]


# ----------------------------------------------------------------------------- read-only folders
_READ_ONLY = []
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {"os.mkdir": (0,), "os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1), "os.link": (1,),
                "os.symlink": (1,), "os.truncate": (0,), "os.chmod": (0,), "os.utime": (0,), "shutil.rmtree": (0,)}
_hook_installed = False


def _inside(path):
    try:
        p = os.path.abspath(os.fsdecode(path))
    except TypeError:  # a file descriptor
        return None
    for root in _READ_ONLY:
        if p == root or p.startswith(root + os.sep):
            return p
    return None


def _audit(event, args):
    if not _READ_ONLY:
        return
    hits = []
    if event == "open" and args[2] is not None and args[2] & _WRITE_FLAGS:
        hits = [args[0]]
    elif event in _PATH_EVENTS:
        hits = [args[i] for i in _PATH_EVENTS[event]]
    for h in hits:
        p = _inside(h)
        if p is not None:
            raise PermissionError(errno.EACCES, "Permission denied", p)


@contextlib.contextmanager
def read_only(*folders):
    """Refuse every write under ``folders`` in this process (audit hook), and chmod them -w."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)
        _hook_installed = True
    modes = {}
    for folder in folders:
        for d, _, files in os.walk(folder):
            for p in [d] + [os.path.join(d, f) for f in files]:
                modes[p] = os.stat(p).st_mode
                os.chmod(p, modes[p] & ~0o222)
    roots = [os.path.abspath(f) for f in folders]
    _READ_ONLY.extend(roots)
    try:
        yield
    finally:
        del _READ_ONLY[-len(roots):]
        for p, mode in modes.items():
            os.chmod(p, mode)
