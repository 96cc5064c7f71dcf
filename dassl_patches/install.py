#!/usr/bin/env python
"""Install (or remove) the calibrated evaluator into an upstream Dassl.pytorch.

    python dassl_patches/install.py                      # the importable `dassl`
    python dassl_patches/install.py --dassl /path/to/Dassl.pytorch   # repo or package dir
    python dassl_patches/install.py --uninstall [--dassl ...]

Installing backs up ``dassl/evaluation/evaluator.py`` to ``evaluator.py.orig`` (once: re-installing
never overwrites the original with the patch) and copies ``dassl_patches/evaluator.py`` in its place;
``--uninstall`` restores the backup. Files are replaced atomically. Exit status 1 on error, with one line.
"""
import argparse
import importlib.util
import os
import stat
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # a source checkout: cpt/ beside this folder
from cpt.calibration.fileio import atomic_write_bytes  # noqa: E402

PATCH = os.path.join(HERE, "evaluator.py")
MARKER = "Drop-in replacement for upstream Dassl.pytorch"


class InstallError(RuntimeError):
    pass


def find_evaluation_dir(dassl_path=None):
    """``.../dassl/evaluation`` of ``dassl_path`` (the Dassl.pytorch repository, its ``dassl`` package
    or that package's ``evaluation`` folder), else of the importable ``dassl``."""
    if dassl_path is None:
        spec = importlib.util.find_spec("dassl")
        if spec is None or not spec.submodule_search_locations:
            raise InstallError("no importable `dassl` package found; pass --dassl /path/to/Dassl.pytorch")
        candidates = [os.path.join(p, "evaluation") for p in spec.submodule_search_locations]
    else:
        p = os.path.abspath(os.path.expanduser(dassl_path))
        candidates = [p, os.path.join(p, "evaluation"), os.path.join(p, "dassl", "evaluation")]
    for c in candidates:
        if os.path.isfile(os.path.join(c, "build.py")) and os.path.isfile(os.path.join(c, "__init__.py")):
            return c
    raise InstallError(f"no dassl/evaluation/ with build.py and __init__.py under {dassl_path or candidates}")


def _atomic_copy(src, dst):
    """Replace ``dst`` with a copy of ``src`` atomically, keeping the mode of an existing ``dst``."""
    mode = stat.S_IMODE(os.stat(dst).st_mode) if os.path.exists(dst) else None
    with open(src, "rb") as f:
        atomic_write_bytes(f.read(), dst)
    if mode is not None:
        os.chmod(dst, mode)


def _is_patch(path):
    try:
        with open(path, encoding="utf-8") as f:
            return MARKER in f.read(2000)
    except OSError:
        return False


def _target(dassl_path):
    target = os.path.join(find_evaluation_dir(dassl_path), "evaluator.py")
    return target, target + ".orig"


def install(dassl_path=None):
    """Back up the original evaluator.py (once) and copy the patch in. Returns the target path."""
    target, backup = _target(dassl_path)
    if os.path.exists(target) and not os.path.exists(backup):
        if _is_patch(target):
            raise InstallError(f"{target} is already the patch but no backup {backup} exists")
        _atomic_copy(target, backup)
    _atomic_copy(PATCH, target)
    return target


def uninstall(dassl_path=None):
    """Restore evaluator.py from evaluator.py.orig and remove the backup. Returns the target path."""
    target, backup = _target(dassl_path)
    if not os.path.exists(backup):
        raise InstallError(f"no backup {backup} to restore (was the patch installed?)")
    _atomic_copy(backup, target)
    os.remove(backup)
    return target


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dassl", default=None,
                    help="Dassl.pytorch repo root, dassl/ package dir or dassl/evaluation/ dir "
                         "(default: the importable `dassl`)")
    ap.add_argument("--uninstall", action="store_true", help="restore the original evaluator.py")
    args = ap.parse_args(argv)
    try:
        if args.uninstall:
            print(f"restored {uninstall(args.dassl)}")
        else:
            target = install(args.dassl)
            print(f"installed {target} (original in {target}.orig)")
            if importlib.util.find_spec("cpt") is None:
                print("note: the `cpt` package (this project) is not importable from this Python; "
                      "`pip install -e .` this project in Dassl's environment")
    except (InstallError, OSError) as e:
        print(f"dassl_patches/install.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
