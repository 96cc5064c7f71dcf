"""Fault injection for the crash/resume tests: ``CPT_FAULT=<point>:<n>[:<signal>]``.

The process sends itself ``signal`` (``KILL`` by default; ``INT``, ``TERM``, ``STOP``, ...) the
``n``-th time (1-based, counted per process) it reaches ``point``. Points:

- ``batch``: before each training batch (counted over epochs, resumed epochs included);
- ``checkpoint_write``: halfway through writing a checkpoint's temporary file (the file on disk
  holds half the bytes; the checkpoint itself is not yet renamed into place).

Unset or empty ``CPT_FAULT``: every call is a no-op. Several faults: separate them with commas.
"""
import os
import signal

_hits = {}


def _parse(spec):
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        fields = part.split(":")
        if len(fields) not in (2, 3) or not fields[1].isdigit():
            raise ValueError(f"CPT_FAULT: expected '<point>:<n>[:<signal>]', got {part!r}")
        sig = fields[2].upper() if len(fields) == 3 else "KILL"
        signum = getattr(signal, "SIG" + sig, None)
        if not isinstance(signum, signal.Signals):
            raise ValueError(f"CPT_FAULT: unknown signal {fields[2]!r} in {part!r}")
        out.append((fields[0], int(fields[1]), signum))
    return out


def fault_point(name):
    """Count a visit of ``name``; signal this process when ``CPT_FAULT`` asks for this visit."""
    spec = os.environ.get("CPT_FAULT", "")
    if not spec:
        return
    _hits[name] = _hits.get(name, 0) + 1
    for point, n, signum in _parse(spec):
        if point == name and n == _hits[name]:
            os.kill(os.getpid(), signum)
