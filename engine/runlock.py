"""One run per output folder: ``<output>/.run.lock`` holds the owner's pid, host and start time.

The lock file is written complete under a temporary name and hard-linked into place (the link fails
when a lock exists, so two runs never both get it). A lock is stale, and taken over, when it names
this host and a pid that is not running or that started at another time (reused); a lock from
another host is never taken over. Creating the lock is also the check that the folder is writable.
"""
import contextlib
import json
import os
import socket
import sys
import tempfile
import time

LOCK_NAME = ".run.lock"


class RunLockError(RuntimeError):
    """The output folder is in use by another run, or cannot be written."""


def process_start_time(pid):
    """Start time of ``pid`` in clock ticks since boot (Linux ``/proc``), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces; fields after the last ')' are plain
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(holder):
    """True when ``holder`` (a parsed lock) names a process of this host that no longer runs."""
    if holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        return True
    started = holder.get("start")  # a reused pid: the process started at another time
    return started is not None and process_start_time(pid) not in (None, started)


def _read(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


class RunLock:
    """``acquire()`` / ``release()`` the lock of ``folder`` (created when missing)."""

    def __init__(self, folder):
        self.folder = folder
        self.path = os.path.join(folder, LOCK_NAME)
        self.record = None

    def _describe(self, holder):
        when = holder.get("time")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if isinstance(when, (int, float)) else "?"
        return f"pid {holder.get('pid')} on {holder.get('host')} (started {when})"

    def acquire(self):
        tmp = None
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-lock-")
            me = os.getpid()
            self.record = {"pid": me, "host": socket.gethostname(), "start": process_start_time(me),
                           "time": time.time(), "argv": sys.argv}
            with os.fdopen(fd, "w") as f:
                json.dump(self.record, f)
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                    return self
                except FileExistsError:
                    holder = _read(self.path)
                    if holder is None:  # released meanwhile
                        continue
                    if holder and not is_stale(holder):
                        raise RunLockError(
                            f"output folder {self.folder} is in use by {self._describe(holder)}: lock file "
                            f"{self.path}. Wait for that run, use another --output-dir, or delete the lock "
                            f"file if that run is gone") from None
                    if not holder:
                        raise RunLockError(f"unreadable lock file {self.path}; delete it if no run uses "
                                           f"{self.folder}") from None
                    self._take_over(holder)
            raise RunLockError(f"could not take the lock {self.path} (other runs keep starting)")
        except OSError as e:
            raise RunLockError(f"cannot write into output folder {self.folder}: {e.strerror or e}") from e
        finally:
            if tmp and os.path.exists(tmp):
                os.remove(tmp)

    def _take_over(self, holder):
        """Move a stale lock aside; puts it back when another run replaced it meanwhile."""
        aside = f"{self.path}.stale-{os.getpid()}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if _read(aside) != holder:  # not the lock judged stale: restore it if the place is free
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
        os.remove(aside)

    def release(self):
        if self.record is not None and _read(self.path) == self.record:
            os.remove(self.path)
        self.record = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
