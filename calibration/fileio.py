"""Atomic file writes, the one implementation every layer uses (it imports nothing from the project).

A write goes to a temporary ``.tmp-*`` file in the target's folder, is fsynced, then ``os.replace``-d
onto the target (atomic on POSIX), so a crash leaves the old file or the new one, never half of
either. New files get the usual ``0o666 & ~umask`` mode (``mkstemp`` alone gives 0600). A failed
write (a full disk, a file size limit) raises an ``OSError`` with the same errno whose message names
the target, and leaves no temporary file.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from typing import IO, Any, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]

TMP_PREFIX = ".tmp-"


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write_bytes(data: bytes, path: PathLike, midway: Callable[[], object] | None = None) -> str:
    """Write ``data`` (bytes) to ``path`` atomically; returns ``path``.

    ``midway``: called after half of ``data`` is written (fault-injection tests).
    """
    path = os.fspath(path)
    tmp = None
    try:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX)
        try:
            if midway is not None:
                _write_all(fd, data[:len(data) // 2])
                midway()
                data = data[len(data) // 2:]
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        mask = os.umask(0)  # read the umask (and put it back)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        if isinstance(e, OSError):
            where = f" ({e.filename})" if e.filename not in (None, path, tmp) else ""
            raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}{where}") from e
        raise
    return path


def atomic_write_text(text: str, path: PathLike) -> str:
    return atomic_write_bytes(text.encode("utf-8"), path)


def atomic_write_json(obj: Any, path: PathLike, indent: int | None = 2,
                      default: Callable[[Any], Any] | None = None) -> str:
    return atomic_write_text(json.dumps(obj, indent=indent, default=default), path)


def atomic_write_with(writer: Callable[[IO[bytes]], object], path: PathLike) -> str:
    """Atomically write what ``writer(fileobj)`` writes into a binary buffer (``fig.savefig``,
    ``torch.save``, ``shutil.copyfileobj``)."""
    buf = io.BytesIO()
    writer(buf)
    return atomic_write_bytes(buf.getvalue(), path)
