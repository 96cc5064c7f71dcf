"""Atomic file writes, the one implementation every layer uses (it imports nothing from the project).

A write goes to a temporary ``.tmp-*`` file in the target's folder, is flushed and fsynced, then
``os.replace``-d onto the target (atomic on POSIX), so a crash leaves the old file or the new one,
never half of either. New files get the usual ``0o666 & ~umask`` mode (``mkstemp`` alone gives 0600).
"""
import io
import json
import os
import tempfile

TMP_PREFIX = ".tmp-"


def atomic_write_bytes(data, path, midway=None):
    """Write ``data`` (bytes) to ``path`` atomically; returns ``path``.

    ``midway``: called after half of ``data`` is written and flushed (fault-injection tests).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            if midway is not None:
                f.write(data[:len(data) // 2])
                f.flush()
                midway()
                data = data[len(data) // 2:]
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)  # read the umask (and put it back)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_write_text(text, path):
    return atomic_write_bytes(text.encode("utf-8"), path)


def atomic_write_json(obj, path, indent=2, default=None):
    return atomic_write_text(json.dumps(obj, indent=indent, default=default), path)


def atomic_write_with(writer, path):
    """Atomically write what ``writer(fileobj)`` writes into a binary buffer (``fig.savefig``,
    ``torch.save``, ``shutil.copyfileobj``)."""
    buf = io.BytesIO()
    writer(buf)
    return atomic_write_bytes(buf.getvalue(), path)
