#!/usr/bin/env python
"""Sweep driver: datasets x seeds x methods(+cfg) x calibrators, base-to-new train + test.

Usage (``python scripts/sweep.py -h`` for all flags)::

    python scripts/sweep.py --datasets dtd eurosat --seeds 1 2 3 --methods coop maple \\
        --calibs none tcpt [--executor local|submitit-local|slurm] [--dry-run]
    python scripts/sweep.py --grid grid.yaml [flags that override the file]

Each grid point is one *unit*: the base-class run (``train_base``), then the new-class run
(``test_new``), with the commands of ``scripts/<method>/base2new_{train,test}_<m>.sh`` (both built
by ``cpt.cli.catalog.Setup``; the methods of ``CPT_PLUGINS`` included, and the runs inherit it). A step
whose ``results.json`` says ``"status": "finished"`` is skipped, so a sweep restarted with the same
arguments runs only what is unfinished (train.py resumes an unfinished train step). A unit with a
finished step whose recorded config fingerprint or seed differs from its command's is refused
(listed as failed, nothing of it runs): other options need another output root.

Executors: ``local`` (a queue over one slot per GPU, each run seeing ``CUDA_VISIBLE_DEVICES=<its
GPU>``, or over CPU slots), ``slurm`` (a submitit job array) and ``submitit-local`` (the same jobs
through submitit's ``LocalExecutor``; for tests). Unit logs go to ``<output>/sweep_logs/``.

Grid YAML (every key optional; CLI flags override)::

    datasets: [dtd, eurosat]      # stems of configs/datasets/, or .yaml paths (runs: <stem>/)
    seeds: [1, 2, 3]
    methods: [coop, "maple:vit_b16_c2_ep5_batch4_2ctx", {method: kgcoop, cfg: vit_b16_ep100_ctxv1}]
    calibs: [none, tcpt]          # presets in configs/calibration/<name>.yaml
    shots: 16
    output: output                # relative to the current directory
    data: /path/to/datasets       # else $DATA
    opts: "OPTIM.MAX_EPOCH 5"     # trailing KEY VALUE opts for every run
"""
import argparse
import os
import shlex
import sys
from dataclasses import dataclass

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
from cpt.cli import catalog  # noqa: E402
from cpt.cli.catalog import CatalogError, is_finished  # noqa: E402
from cpt.cli.plugins import load_plugins  # noqa: E402
from sweep_executors import Outcome, execute  # noqa: E402


@dataclass
class Run:
    """One grid point: base-class run then new-class run."""
    label: str
    train_dir: str
    test_dir: str
    train_cmd: list
    test_cmd: list
    log_path: str = ""

    def steps(self):
        """[(step name, argv, run dir)] of both steps."""
        return [("train", self.train_cmd, self.train_dir), ("test", self.test_cmd, self.test_dir)]

    def pending(self):
        """The steps still to do (finished steps left out)."""
        return [s for s in self.steps() if not is_finished(s[2])]


def check_finished(runs):
    """``({label: refusal}, n)``: the units with a finished step run with other options than its
    command now (``catalog.compare_finished``; not run, counted failed), and how many finished
    steps recorded no fingerprint (skipped uncompared)."""
    refused, unchecked = {}, 0
    for r in runs:
        for _, cmd, out_dir in r.steps():
            if not is_finished(out_dir):
                continue
            verdict, why = catalog.compare_finished(out_dir, cmd[2:])
            unchecked += verdict == "unchecked"
            if verdict == "other":
                refused[r.label] = catalog.refusal(out_dir, why)
                break
    return refused, unchecked


def _as_list(v):
    return None if v is None else list(v) if isinstance(v, (list, tuple)) else str(v).split()


def _output(grid, root):
    return os.path.abspath(grid.get("output") or os.environ.get("OUTPUT") or os.path.join(root, "output"))


def expand_grid(grid, root=REPO_ROOT):
    """List of :class:`Run` for a grid dict with keys datasets, seeds, methods, calibs, shots,
    output, data, opts, python, load_epoch, log_dir (missing keys: defaults / environment).

    Order: method, calibrator, dataset, seed. Raises :class:`CatalogError` naming a missing file.
    """
    datasets = _as_list(grid.get("datasets")) or catalog.BENCHMARKS
    seeds = [int(s) for s in (_as_list(grid.get("seeds")) or [1, 2, 3])]
    calibs = _as_list(grid.get("calibs", grid.get("calibrators"))) or ["none"]
    shots = int(grid.get("shots") or 16)
    output = _output(grid, root)
    data = grid.get("data") or os.environ.get("DATA") or ""
    if not data:
        raise CatalogError("DATA is not set: pass --data or export DATA=/path/to/datasets")
    opts = grid.get("opts") or os.environ.get("OPTS") or ""
    opts = tuple(str(w) for w in (opts if isinstance(opts, (list, tuple)) else shlex.split(str(opts))))
    python = grid.get("python") or os.environ.get("PYTHON") or sys.executable
    log_dir = grid.get("log_dir") or os.path.join(output, "sweep_logs")
    runs = []
    for spec in grid.get("methods") or [catalog.default_method()]:
        name, cfg = (spec.get("method"), spec.get("cfg")) if isinstance(spec, dict) else (str(spec), None)
        name, _, cfg_in_name = str(name).partition(":")
        for calib in calibs:
            s = catalog.Setup.resolve(root, name, cfg or cfg_in_name or None, calib, shots=shots, output=output,
                                      data=data, python=python, opts=opts,
                                      load_epoch=grid.get("load_epoch", os.environ.get("LOAD_EPOCH")))
            for ds in datasets:
                for seed in seeds:
                    tr = s.run_dir("base2new", "train_base", ds, seed)
                    te = s.run_dir("base2new", "test_new", ds, seed)
                    d = catalog.yaml_name(ds)  # a stem, or a .yaml path's stem
                    log = os.path.join(log_dir, s.method.trainer, s.cfgdir, f"{d}_shots{shots}_seed{seed}.log")
                    runs.append(Run(f"{s.method.trainer}/{s.cfgdir}/{d}/shots_{shots}/seed{seed}", tr, te,
                                    s.command(ds, seed, tr, "base"), s.command(ds, seed, te, "new", tr), log))
    return runs


# ----------------------------------------------------------------------------- CLI
def build_parser():
    p = argparse.ArgumentParser(description="Base-to-new sweep: datasets x seeds x methods x calibrators.",
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", help="YAML file with the grid (keys as below; flags override)")
    p.add_argument("--datasets", nargs="+",
                   help="dataset yaml stems or .yaml paths (default: the 11 benchmarks)")
    p.add_argument("--seeds", nargs="+", type=int, help="default 1 2 3")
    p.add_argument("--methods", nargs="+", help="method[:cfg] of the catalog (python -m cpt.cli.catalog; default: its "
                   "default method)")
    p.add_argument("--calibs", nargs="+", help="calibration presets (configs/calibration/<name>.yaml) or none")
    p.add_argument("--shots", type=int)
    p.add_argument("--output", help="output root (default $OUTPUT or <repo>/output)")
    p.add_argument("--data", help="dataset root (default $DATA)")
    p.add_argument("--opts", help='trailing "KEY VALUE ..." opts for every run (default $OPTS)')
    p.add_argument("--load-epoch", help="checkpoint epoch to test (default: MAX_EPOCH of the config)")
    p.add_argument("--python", help="interpreter for train.py (default $PYTHON or this interpreter)")
    p.add_argument("--repo-root", default=REPO_ROOT, help=argparse.SUPPRESS)
    p.add_argument("--log-dir", help="unit logs (default <output>/sweep_logs)")
    p.add_argument("--dry-run", action="store_true", help="print the commands of unfinished steps and exit")
    p.add_argument("--executor", choices=["local", "slurm", "submitit-local"], default="local")
    p.add_argument("--gpus", help="local: comma-separated GPU ids, or 'none' for CPU (default: detect)")
    p.add_argument("--runs-per-gpu", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="local without GPUs: parallel CPU runs")
    p.add_argument("--submitit-folder", help="submitit logs/pickles (default <output>/submitit)")
    p.add_argument("--timeout-min", type=int, default=24 * 60, help="per job, minutes (submitit executors)")
    p.add_argument("--gpus-per-job", type=int, default=None, help="submitit: GPUs per job (slurm 1, local 0)")
    p.add_argument("--cpus-per-task", type=int, default=8)
    p.add_argument("--mem-gb", type=int)
    p.add_argument("--slurm-partition")
    p.add_argument("--slurm-array-parallelism", type=int)
    p.add_argument("--slurm-extra", nargs="+", metavar="KEY=VALUE", help="more sbatch options")
    p.add_argument("--wait", action="store_true", help="slurm: wait for the jobs and report")
    return p


GRID_KEYS = ("datasets", "seeds", "methods", "calibs", "shots", "output", "data", "opts", "python", "log_dir",
             "load_epoch")


def grid_from_args(args):
    grid = {}
    if args.grid:
        import yaml
        with open(args.grid, encoding="utf-8") as f:
            grid = yaml.safe_load(f) or {}
        if not isinstance(grid, dict):
            raise CatalogError(f"{args.grid}: expected a mapping with keys datasets, seeds, methods, calibs, ...")
        unknown = set(grid) - set(GRID_KEYS) - {"calibrators"}
        if unknown:
            raise CatalogError(f"{args.grid}: unknown keys {sorted(unknown)}")
        if grid.get("output") and not os.path.isabs(str(grid["output"])):
            grid["output"] = os.path.abspath(str(grid["output"]))
    grid.update({k: getattr(args, k) for k in GRID_KEYS if getattr(args, k) is not None})
    return grid


def main(argv=None):
    args = build_parser().parse_args(argv)
    load_plugins()
    try:
        grid = grid_from_args(args)
        if args.dry_run and not (grid.get("data") or os.environ.get("DATA")):
            grid["data"] = "$DATA"
            print("# warning: DATA is not set; printing $DATA", file=sys.stderr)
        runs = expand_grid(grid, root=args.repo_root)
    except CatalogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    refused, unchecked = check_finished(runs)
    todo = [r for r in runs if r.pending() and r.label not in refused]
    n_done = sum(1 for r in runs if not r.pending() and r.label not in refused)
    print(f"# {len(runs)} units, {n_done} finished, {len(todo)} to run"
          + (f", {len(refused)} refused" if refused else ""))
    if unchecked:
        print(f"# note: {unchecked} finished step(s) without a config fingerprint (older runs, or a command "
              "that does not resolve): skipped, options not compared")
    for msg in refused.values():
        print(f"error: {msg}", file=sys.stderr, flush=True)
    refusals = [Outcome(r, "failed", refused[r.label]) for r in runs if r.label in refused]
    if args.dry_run:
        for r in runs:
            steps = r.pending()
            if r.label in refused:
                print(f"# refused (finished with other options): {r.label}")
                continue
            if not steps:
                print(f"# skip (finished): {r.label}")
                continue
            print(f"# {r.label}: {' + '.join(s[0] for s in steps)}")
            for _, cmd, _ in steps:
                print(shlex.join(cmd))
        return 1 if refused else 0
    if not todo:
        return report(refusals) if refused else 0
    folder = args.submitit_folder or os.path.join(_output(grid, args.repo_root), "submitit")
    outcomes = execute(todo, args, folder)
    if isinstance(outcomes, int):
        return outcomes or (1 if refused else 0)
    return report(outcomes + refusals)


def report(outcomes):
    """Print the tally and the failed units (refused ones included); 1 when any failed."""
    failed = [o for o in outcomes if o.status == "failed"]
    print(f"# {sum(o.status == 'ok' for o in outcomes)} ok, {len(failed)} failed, "
          f"{sum(o.status == 'skipped' for o in outcomes)} skipped")
    for o in failed:
        print(f"#   failed: {o.run.label}: {o.message}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
