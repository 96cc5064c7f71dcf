"""Discovery and reading of run directories (layout and dataset order: ``cpt.cli.catalog``)."""
import json
import math
import os
import re
from dataclasses import dataclass, field

from .. import catalog

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULT_LINE = re.compile(r"^\*\s*([A-Za-z][\w \-]*?)\s*:\s*([-+0-9.,eE]+)\s*(%?)\s*$")
# log.txt key spellings -> results.json keys
LOG_KEY_ALIASES = {"ace": "adaptive_ece", "adaptive_calibration_error": "adaptive_ece", "acc": "accuracy"}


class Record:
    def __getitem__(self, key):  # dict-style reads (run["status"]) of earlier callers
        return getattr(self, key)


@dataclass
class Run(Record):
    """One ``seed<S>`` directory as read. ``side``: base/new (base2new) or source/target (dg);
    ``status``: ``finished`` or why not (failed, unfinished, unreadable, non-finite, no-accuracy,
    ...); ``metrics``: percent, as the run wrote them; ``source``: ``results.json``, ``log.txt``
    or None; ``fingerprint`` / ``identity``: the run's config identity (``engine/identity.py``),
    None for a run written before results.json recorded them."""
    path: str
    side: str
    dataset: str
    seed: int
    shots: int = None
    trainer: str = "?"
    config: str = "?"
    calibration: str = "none"
    status: str = "unfinished"
    metrics: dict = field(default_factory=dict)
    error: str = ""
    source: str = None
    fingerprint: str = None
    identity: dict = None

    @property
    def group(self):
        return (self.trainer, self.config, self.calibration, self.shots)

    @property
    def finished(self):
        return self.status == "finished"


def split_cfg_dir(name, trainer, repo_root=REPO_ROOT):
    """Split a ``<cfg>`` / ``<cfg>_<calib>`` directory name into (config, calibration).

    Uses the config stems of the trainer (``catalog.config_dirs``) and the presets under
    ``configs/calibration``; an unknown name is taken as a config with calibration ``none``.
    """
    cfgs = {s for d in catalog.config_dirs(repo_root, trainer) for s in catalog.yaml_stems(d)}
    if name in cfgs:
        return name, "none"
    for c in sorted(cfgs, key=len, reverse=True):
        if name.startswith(c + "_"):
            return c, name[len(c) + 1:]
    for k in sorted(catalog.yaml_stems(os.path.join(repo_root, "configs", "calibration")), key=len, reverse=True):
        if name.endswith("_" + k) and len(name) > len(k) + 1:
            return name[: -len(k) - 1], k
    return name, "none"


def parse_log(path):
    """Metrics of the last ``=> result`` block of a Dassl log (None when there is none).

    Keys are lower-cased with spaces/hyphens as underscores; percent values are kept as they are.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("=> result")]
    if not starts:
        return None
    metrics = {}
    for line in lines[starts[-1] + 1:]:
        m = RESULT_LINE.match(line.strip())
        if not m:
            if metrics:
                break
            continue
        key = re.sub(r"[\s\-]+", "_", m.group(1).strip().lower())
        try:
            metrics[LOG_KEY_ALIASES.get(key, key)] = float(m.group(2).replace(",", ""))
        except ValueError:
            continue
    return metrics or None


def run_from_path(run_dir, side, rel_parts, repo_root):
    """The path fallback: ``<dataset>/shots_<K>/<trainer>/<cfgdir...>/seed<S>``."""
    parts = list(rel_parts)
    run = Run(run_dir, side, parts[0] if len(parts) >= 2 else "?", int(parts[-1][4:]))
    if len(parts) >= 3 and re.fullmatch(r"shots_-?\d+", parts[1]):
        run.shots = int(parts[1][6:])
    run.trainer = parts[2] if len(parts) >= 4 else "?"
    cfgparts = parts[3:-1]
    if len(cfgparts) == 1:
        run.config, run.calibration = split_cfg_dir(cfgparts[0], run.trainer, repo_root)
    elif len(cfgparts) == 2:
        run.config, run.calibration = cfgparts
    else:
        run.config = "/".join(cfgparts) or "?"
    return run


def read_results_json(run, rpath):
    """Fill ``run`` from its ``results.json`` (metadata there wins over the path)."""
    run.source = "results.json"
    try:
        with open(rpath, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError("top level is not an object")
    except (OSError, ValueError) as e:
        run.status, run.error = "unreadable", f"{rpath}: {e}"
        return
    for key in ("trainer", "config", "calibration", "dataset"):
        if data.get(key) not in (None, ""):
            setattr(run, key, str(data[key]))
    for key in ("seed", "shots"):
        try:
            setattr(run, key, int(data[key]))
        except (KeyError, TypeError, ValueError):
            pass
    if data.get("subsample") in ("base", "new"):
        run.side = data["subsample"]
    run.status, run.error = str(data.get("status", "finished")), str(data.get("error") or "")
    if isinstance(data.get("fingerprint"), str) and data["fingerprint"]:
        run.fingerprint = data["fingerprint"]
        run.identity = data["identity"] if isinstance(data.get("identity"), dict) else None
    run.metrics = {k: float(v) for k, v in (data.get("metrics") or {}).items() if isinstance(v, (int, float))}
    bad = sorted(k for k, v in run.metrics.items() if not math.isfinite(v))
    if bad:  # never averaged: a NaN would poison every mean it enters
        run.status, run.error = "non-finite", f"{rpath}: metrics {', '.join(bad)} are not finite"
    elif run.finished and "accuracy" not in run.metrics:
        run.status, run.error = "no-accuracy", f"{rpath}: metrics has no 'accuracy'"


def read_run(run_dir, side, rel_parts, repo_root):
    """One run: ``results.json`` when present, else the last result block of ``log.txt`` (finished
    when it holds an accuracy), else unfinished."""
    run = run_from_path(run_dir, side, rel_parts, repo_root)
    rpath, lpath = os.path.join(run_dir, "results.json"), os.path.join(run_dir, "log.txt")
    if os.path.isfile(rpath):
        read_results_json(run, rpath)
    elif os.path.isfile(lpath):
        run.source = "log.txt"
        metrics = parse_log(lpath)
        if metrics and "accuracy" in metrics:
            run.status, run.metrics = "finished", metrics
        else:
            run.error = "log.txt has no '=> result' block with '* accuracy'"
    else:
        run.error = "no results.json or log.txt"
    return run


def collect_runs(output_root, repo_root=REPO_ROOT):
    """Every ``seed<S>`` directory under ``OUTPUT_ROOT/base2new/{train_base,test_new}``."""
    return collect(output_root, "base2new", repo_root)


def collect(output_root, layout, repo_root=REPO_ROOT):
    """Every ``seed<S>`` directory under ``OUTPUT_ROOT/<layout>/<split>`` (``catalog.LAYOUTS``).
    DG runs keep the side of their split (their results.json says subsample ``all``)."""
    runs = []
    for split_name, side in catalog.LAYOUTS[layout].items():
        top = os.path.join(output_root, layout, split_name)
        for dirpath, dirnames, _ in os.walk(top):
            dirnames.sort()
            if catalog.SEED_DIR.fullmatch(os.path.basename(dirpath)):
                dirnames[:] = []  # checkpoints etc. below
                run = read_run(dirpath, side, os.path.relpath(dirpath, top).split(os.sep), repo_root)
                if layout == "dg":
                    run.side = side
                runs.append(run)
    return runs
