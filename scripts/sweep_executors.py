"""The executors of ``scripts/sweep.py`` (its docstring says what each does), running its units
(``sweep.Run``: the pending steps in order, output appended to the unit log)."""
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from cpt.cli import catalog
from cpt.cli.catalog import is_finished


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
    run: object  # a sweep.Run
    status: str  # "ok", "failed", "skipped", "interrupted"
    message: str = ""
    seconds: float = 0.0


def run_unit(run, slot, stop, active, lock, echo=print):
    """Run the pending steps of one unit in order; the test step only after a finished train step.
    ``stop`` (an Event) ends it early; ``active`` (a set guarded by ``lock``) holds its process."""
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


def execute(todo, args, folder, echo=print):
    """The outcomes of the units ``todo`` run by ``args.executor`` (``folder``: submitit's), or an exit
    status: 2 (no executor), 130 (Ctrl-C), 0 (slurm jobs submitted, not waited for)."""
    if args.executor == "local":
        gpus = None
        if args.gpus is not None:
            off = args.gpus.lower() in ("none", "cpu", "")
            gpus = [] if off else [g.strip() for g in args.gpus.split(",") if g.strip()]
        slots = make_slots(gpus, args.workers, args.runs_per_gpu)
        echo(f"# local executor: {len(slots)} slot(s): " + ", ".join("cpu" if s is None else f"gpu{s}" for s in slots))
        try:
            return run_local(todo, slots, echo)
        except KeyboardInterrupt:
            return 130
    if args.gpus_per_job is None:
        args.gpus_per_job = 1 if args.executor == "slurm" else 0
    try:
        executor = make_executor(args.executor, folder, args)
    except ImportError:
        print("error: the slurm/submitit-local executors need submitit (pip install submitit)", file=sys.stderr)
        return 2
    except RuntimeError as e:  # e.g. no srun: not on a Slurm cluster
        print(f"error: cannot create the {args.executor} executor: {e}", file=sys.stderr)
        return 2
    pairs = submit(todo, executor, echo)
    if args.executor == "slurm" and not args.wait:
        echo(f"# submitted {len(pairs)} jobs; logs in {folder}; re-run this command later to resubmit "
             "what is unfinished, parse with scripts/parse_results.py")
        return 0
    return wait_jobs(pairs, echo)
