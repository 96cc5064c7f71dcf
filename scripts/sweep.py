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
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
from cpt.cli import catalog  # noqa: E402
from cpt.cli.catalog import CatalogError as GridError, is_finished  # noqa: E402
from cpt.cli.plugins import load_plugins  # noqa: E402


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

    Order: method, calibrator, dataset, seed. Raises :class:`GridError` naming a missing file.
    """
    datasets = _as_list(grid.get("datasets")) or catalog.BENCHMARKS
    seeds = [int(s) for s in (_as_list(grid.get("seeds")) or [1, 2, 3])]
    calibs = _as_list(grid.get("calibs", grid.get("calibrators"))) or ["none"]
    shots = int(grid.get("shots") or 16)
    output = _output(grid, root)
    data = grid.get("data") or os.environ.get("DATA") or ""
    if not data:
        raise GridError("DATA is not set: pass --data or export DATA=/path/to/datasets")
    opts = grid.get("opts") or os.environ.get("OPTS") or ""
    opts = tuple(str(w) for w in (opts if isinstance(opts, (list, tuple)) else shlex.split(str(opts))))
    python = grid.get("python") or os.environ.get("PYTHON") or sys.executable
    log_dir = grid.get("log_dir") or os.path.join(output, "sweep_logs")
    runs = []
    for spec in grid.get("methods") or ["coop"]:
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
                    name = catalog.yaml_name(ds)  # a stem, or a .yaml path's stem
                    log = os.path.join(log_dir, s.method.trainer, s.cfgdir, f"{name}_shots{shots}_seed{seed}.log")
                    runs.append(Run(f"{s.method.trainer}/{s.cfgdir}/{name}/shots_{shots}/seed{seed}", tr, te,
                                    s.command(ds, seed, tr, "base"), s.command(ds, seed, te, "new", tr), log))
    return runs


# ----------------------------------------------------------------------------- local executor
def detect_gpus():
    """GPU ids from CUDA_VISIBLE_DEVICES when set, else from ``nvidia-smi``; [] on a CPU machine."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        return [g.strip() for g in cvd.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def make_slots(gpus=None, workers=1, runs_per_gpu=1):
    """Slots of the local queue: GPU id strings (each repeated runs_per_gpu times) or None (CPU)."""
    gpus = detect_gpus() if gpus is None else gpus
    if gpus:
        return [g for g in gpus for _ in range(max(1, runs_per_gpu))]
    return [None] * max(1, workers)


@dataclass
class Outcome:
    run: Run
    status: str  # "ok", "failed", "skipped", "interrupted"
    message: str = ""
    seconds: float = 0.0


def run_unit(run, slot=None, stop=None, active=None, lock=None, echo=print):
    """Run the pending steps of one unit in order; the test step only after a finished train step.
    ``stop`` (an Event) ends it early; ``active`` (a set guarded by ``lock``) holds its process."""
    stop, active, lock = stop or threading.Event(), set() if active is None else active, lock or threading.Lock()
    t0 = time.time()
    steps = run.pending()
    if not steps:
        return Outcome(run, "skipped", "finished")
    env = dict(os.environ)
    if slot is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(slot)
    os.makedirs(os.path.dirname(run.log_path), exist_ok=True)
    for name, cmd, out_dir in steps:
        if stop.is_set():
            return Outcome(run, "interrupted", f"before {name}", time.time() - t0)
        if is_finished(out_dir):  # finished meanwhile (another sweep)
            continue
        echo(f"[start] {'gpu' + str(slot) if slot is not None else 'cpu'} {run.label} {name}")
        with open(run.log_path, "a", encoding="utf-8") as log:
            log.write(f"$ {shlex.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            with lock:
                active.add(proc)
            try:
                rc = proc.wait()
            finally:
                with lock:
                    active.discard(proc)
        if stop.is_set():
            return Outcome(run, "interrupted", f"during {name}", time.time() - t0)
        if rc != 0:
            return Outcome(run, "failed", f"{name} exited {rc}; log: {run.log_path}", time.time() - t0)
        if not is_finished(out_dir):
            return Outcome(run, "failed", f"{name} exited 0 but {out_dir}/results.json is not finished; "
                                          f"log: {run.log_path}", time.time() - t0)
    return Outcome(run, "ok", "", time.time() - t0)


def run_local(runs, slots, echo=print):
    """Execute the units over the slots with a queue; returns the list of :class:`Outcome`.

    Ctrl-C / SIGTERM stop the queue and terminate the running commands (their runs stay
    unfinished and re-run next time).
    """
    q = queue.Queue()
    for r in runs:
        q.put(r)
    outcomes, active, lock, stop = [], set(), threading.Lock(), threading.Event()

    def worker(slot):
        while not stop.is_set():
            try:
                r = q.get_nowait()
            except queue.Empty:
                return
            try:
                o = run_unit(r, slot, stop, active, lock, echo)
            except Exception as e:  # a broken unit must not take the queue down
                o = Outcome(r, "failed", f"{type(e).__name__}: {e}")
            with lock:
                outcomes.append(o)
            if o.status == "ok":
                echo(f"[done] {r.label} ({o.seconds:.1f} s)")
            elif o.status == "failed":
                echo(f"[fail] {r.label}: {o.message}")

    prev = None
    if threading.current_thread() is threading.main_thread():
        def _term(signum, frame):
            raise KeyboardInterrupt
        prev = signal.signal(signal.SIGTERM, _term)
    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in slots]
    try:
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.1)
    except KeyboardInterrupt:
        stop.set()
        with lock:
            procs = list(active)
        for p in procs:
            p.terminate()  # a process that already ended ignores it
        for t in threads:
            t.join(30)
        echo("[interrupted] the sweep stopped; re-run the same command to finish the rest")
        raise
    finally:
        if prev is not None:
            signal.signal(signal.SIGTERM, prev)
    return outcomes


# ----------------------------------------------------------------------------- submitit
def unit_script(run):
    """Bash script of one unit for a submitit job (the same skip rule, output to the unit log)."""
    lines = ["set -e", f"mkdir -p {shlex.quote(os.path.dirname(run.log_path))}",
             f"exec >>{shlex.quote(run.log_path)} 2>&1"]
    for name, cmd, out_dir in run.steps():
        check = catalog.finished_test_sh(out_dir)
        lines += [f"if ! {check}; then", f"  echo {shlex.quote('$ ' + shlex.join(cmd))}", f"  {shlex.join(cmd)}",
                  f"  {check} || {{ echo 'error: {name} step left no finished results.json' >&2; exit 1; }}", "fi"]
    return "\n".join(lines) + "\n"


def make_executor(kind, folder, args):
    import submitit  # imported only for these executors
    if kind == "submitit-local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=args.timeout_min, gpus_per_node=args.gpus_per_job)
        return ex
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = dict(timeout_min=args.timeout_min, gpus_per_node=args.gpus_per_job, tasks_per_node=1, nodes=1,
                  cpus_per_task=args.cpus_per_task, name="cpt-sweep")
    optional = {"mem_gb": args.mem_gb, "slurm_partition": args.slurm_partition,
                "slurm_array_parallelism": args.slurm_array_parallelism,
                "slurm_additional_parameters": dict(kv.partition("=")[::2] for kv in args.slurm_extra or [])}
    ex.update_parameters(**params, **{k: v for k, v in optional.items() if v})
    return ex


def submit(runs, executor, echo=print):
    """Submit one job per unit (a job array); returns [(run, job)]."""
    from submitit.helpers import CommandFunction
    with executor.batch():
        jobs = [executor.submit(CommandFunction(["bash", "-c", unit_script(r)], verbose=False)) for r in runs]
    for r, j in zip(runs, jobs):
        echo(f"[submitted] {r.label} job {j.job_id}")
    return list(zip(runs, jobs))


def wait_jobs(pairs, echo=print):
    outcomes = []
    for r, j in pairs:
        try:
            j.result()
            ok = is_finished(r.test_dir)
            outcomes.append(Outcome(r, "ok" if ok else "failed", "" if ok else "job ended without a finished test run"))
        except Exception as e:  # submitit raises FailedJobError with the job's stderr
            msg = str(e).strip().splitlines()
            outcomes.append(Outcome(r, "failed", f"job {j.job_id}: {msg[-1] if msg else e}; log: {r.log_path}"))
        o = outcomes[-1]
        echo(f"[{'done' if o.status == 'ok' else 'fail'}] {r.label}{': ' + o.message if o.message else ''}")
    return outcomes


# ----------------------------------------------------------------------------- CLI
def build_parser():
    p = argparse.ArgumentParser(description="Base-to-new sweep: datasets x seeds x methods x calibrators.",
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", help="YAML file with the grid (keys as below; flags override)")
    p.add_argument("--datasets", nargs="+",
                   help="dataset yaml stems or .yaml paths (default: the 11 benchmarks)")
    p.add_argument("--seeds", nargs="+", type=int, help="default 1 2 3")
    p.add_argument("--methods", nargs="+", help="method[:cfg] of the catalog (python -m cpt.cli.catalog; default coop)")
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
            raise GridError(f"{args.grid}: expected a mapping with keys datasets, seeds, methods, calibs, ...")
        unknown = set(grid) - set(GRID_KEYS) - {"calibrators"}
        if unknown:
            raise GridError(f"{args.grid}: unknown keys {sorted(unknown)}")
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
    except GridError as e:
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
    if args.executor == "local":
        gpus = None
        if args.gpus is not None:
            off = args.gpus.lower() in ("none", "cpu", "")
            gpus = [] if off else [g.strip() for g in args.gpus.split(",") if g.strip()]
        slots = make_slots(gpus, args.workers, args.runs_per_gpu)
        print(f"# local executor: {len(slots)} slot(s): "
              + ", ".join("cpu" if s is None else f"gpu{s}" for s in slots))
        try:
            outcomes = run_local(todo, slots)
        except KeyboardInterrupt:
            return 130
    else:
        if args.gpus_per_job is None:
            args.gpus_per_job = 1 if args.executor == "slurm" else 0
        folder = args.submitit_folder or os.path.join(_output(grid, args.repo_root), "submitit")
        try:
            executor = make_executor(args.executor, folder, args)
        except ImportError:
            print("error: the slurm/submitit-local executors need submitit (pip install submitit)", file=sys.stderr)
            return 2
        except RuntimeError as e:  # e.g. no srun: not on a Slurm cluster
            print(f"error: cannot create the {args.executor} executor: {e}", file=sys.stderr)
            return 2
        pairs = submit(todo, executor)
        if args.executor == "slurm" and not args.wait:
            print(f"# submitted {len(pairs)} jobs; logs in {folder}; re-run this command later to resubmit "
                  "what is unfinished, parse with scripts/parse_results.py")
            return 1 if refused else 0
        outcomes = wait_jobs(pairs)
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
