#!/usr/bin/env python
"""The one driver behind the bash scripts of ``scripts/<method>/`` and ``scripts/multilabel/``.

``python scripts/drive.py [--multilabel] [--prog NAME] METHOD ACTION [ARGS]`` with ACTION one of

    train DATASET SEED [GPU]        base classes of one dataset (eval-only methods: evaluate them)
    train_datasets [GPU]            train on every dataset x seed (DATASETS, SEEDS)
    test [DATASET SEED] [GPU]       new classes of one run; without DATASET SEED: of every finished
                                    base run of this method/config/calibration/shots (DATASETS and
                                    SEEDS, when set, restrict the list)
    test_datasets [GPU]             test every dataset x seed
    dg_train [SEED [GPU]]           train on DG_SOURCE, all classes (no SEED: every seed of SEEDS)
    dg_test [TARGET SEED [GPU]]     evaluate the DG_SOURCE model on TARGET (no args: DG_TARGETS x SEEDS)
    parse [parse_results.py args]   the tables of METHOD's runs (METHOD ``all``: every trainer);
                                    multi-label: the multi-label table, then the DG table

A dataset (argument, DATASETS, DG_SOURCE, DG_TARGETS) is a stem of ``configs/datasets/`` or the
path of a ``.yaml`` file anywhere (a plugin's dataset); its runs go to a folder named by the stem.

Settings come from the environment (the README's settings table). ``--multilabel``
(``scripts/multilabel/``; implied by a multi-label method) takes the method's multi-label default
config and the multi-label datasets. Commands, directories and the finished rule are
``cpt.cli.catalog``'s, shared with ``scripts/sweep.py``. A finished run is skipped when its recorded
config fingerprint and seed match the command's, and refused (a failed run) when they differ
(``catalog.compare_finished``). A loop over runs keeps going after a failure and exits 1 naming
the failed runs.
"""
import argparse
import glob
import os
import shlex
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
from cpt.cli import catalog  # noqa: E402
from cpt.cli.plugins import load_plugins  # noqa: E402


class Failure(Exception):
    """Ends the current run with ``error: <message>``."""


class Driver:
    def __init__(self, method, multilabel, prog):
        env = os.environ
        self.prog, self.env = prog, env
        m = catalog.get_method(method)
        self.multilabel = multilabel or m.multilabel
        try:
            shots = int(env.get("SHOTS") or 16)
        except ValueError:
            raise Failure(f"SHOTS must be an integer, got '{env['SHOTS']}'") from None
        self.s = catalog.Setup.resolve(
            REPO_ROOT, m, env.get("CFG") or None, env.get("CALIB") or "none", self.multilabel, shots=shots,
            output=os.path.abspath(env.get("OUTPUT") or os.path.join(REPO_ROOT, "output")),
            data=env.get("DATA", ""), python=env.get("PYTHON") or "python", opts=tuple(env.get("OPTS", "").split()),
            load_epoch=env.get("LOAD_EPOCH") or None)
        default = catalog.ML_DATASETS if self.multilabel else catalog.BENCHMARKS
        self.datasets = env.get("DATASETS", "").split() or default
        self.seeds = env.get("SEEDS", "").split() or ["1", "2", "3"]
        self.dry = env.get("DRY_RUN", "0") == "1"
        self.src = env.get("DG_SOURCE") or catalog.DG_SOURCE

    def label(self, kind):
        return f"[{kind}] {self.s.method.trainer} {self.s.cfgdir}"

    def require(self, args, n, usage):
        if len(args) < n:
            raise Failure(f"usage: {self.prog} {usage}")
        if not self.env.get("DATA"):
            raise Failure("DATA is not set. Export the dataset root, e.g. 'export DATA=/path/to/datasets' (the "
                          "folder holding imagenet/, caltech-101/, oxford_pets/, ...; for the offline world "
                          "(DATASETS=shapeworld) any folder will do: the world is generated into the cache).")

    def run(self, out_dir, dataset, seed, subsample, label, gpu, model_dir=None, missing=""):
        """One ``train.py`` run, skipped when finished with the same options (refused when finished
        with others); with ``model_dir`` a test of that trained run."""
        if catalog.is_finished(out_dir):
            verdict, why = catalog.compare_finished(
                out_dir, lambda: self.s.command(dataset, seed, out_dir, subsample, model_dir)[2:])
            if verdict == "other":
                raise Failure(catalog.refusal(out_dir, why))
            print(f"[skip] finished: {out_dir}" + (f" ({why})" if verdict == "unchecked" else ""))
            return 0
        if model_dir is None and os.path.isdir(out_dir):
            print(f"[resume] {out_dir} exists without a finished results.json; re-running")
        trained = model_dir is None or self.s.method.eval_only or catalog.is_finished(model_dir)
        if not trained and not self.dry:
            raise Failure(f"{missing}: {model_dir} has no finished results.json")
        cmd = self.s.command(dataset, seed, out_dir, subsample, model_dir)
        print(f"{label} -> {out_dir}", flush=True)
        if self.dry:
            print(" ".join(shlex.quote(a) for a in cmd) + " ", flush=True)
            return 0
        env = dict(self.env)
        gpu = gpu or self.env.get("GPU")
        if gpu:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        return subprocess.call(cmd, env=env)

    # ------------------------------------------------------------------ actions
    def train(self, *args):
        self.require(args, 2, "DATASET SEED [GPU]")
        d, seed, gpu = (list(args) + [None])[:3]
        return self.run(self.s.run_dir("base2new", "train_base", d, seed), d, seed, "base",
                        f"{self.label('train')} {catalog.yaml_name(d)} seed{seed}", gpu)

    def test_one(self, *args):
        self.require(args, 2, "[DATASET SEED] [GPU]")
        d, seed, gpu = (list(args) + [None])[:3]
        return self.run(self.s.run_dir("base2new", "test_new", d, seed), d, seed, "new",
                        f"{self.label('test')} {catalog.yaml_name(d)} seed{seed}", gpu,
                        self.s.run_dir("base2new", "train_base", d, seed),
                        f"no trained model for {d} seed{seed} (run base2new_train first)")

    def loop(self, action, items, *extra):
        """``action(*item, *extra)`` for every item, each failure noted; 1 when any failed."""
        failed = []
        for item in items:
            if self.guarded(action, *item, *extra) != 0:
                failed.append(f"seed{item[0]}" if len(item) == 1 else f"{item[0]}/seed{item[1]}")
        if failed:
            print(f"error: failed runs: {' '.join(failed)}", file=sys.stderr)
            return 1
        return 0

    def grid(self, action, gpu):
        self.require((), 0, "")
        return self.loop(action, [(d, s) for d in self.datasets for s in self.seeds], *gpu[:1])

    def train_datasets(self, *gpu):
        return self.grid(self.train, gpu)

    def test_datasets(self, *gpu):
        return self.grid(self.test_one, gpu)

    def test(self, *args):
        if len(args) in (2, 3):
            return self.test_one(*args)
        if len(args) > 3:
            raise Failure(f"usage: {self.prog} [DATASET SEED] [GPU]")
        self.require((), 0, "")
        pattern = os.path.join(self.s.output, "base2new", "train_base", "*", f"shots_{self.s.shots}",
                               self.s.method.trainer, self.s.cfgdir, "seed*")
        want_d = {catalog.yaml_name(d): d for d in self.env.get("DATASETS", "").split()}
        want_s = self.env.get("SEEDS", "").split()
        found = [(p.split(os.sep)[-5], os.path.basename(p)[4:], p) for p in sorted(glob.glob(pattern))]
        items = [(want_d.get(d, d), s) for d, s, p in found
                 if catalog.is_finished(p) and (not want_d or d in want_d) and (not want_s or s in want_s)]
        if not items:
            raise Failure(f"no trained model under {pattern} (a finished results.json); run base2new_train first")
        return self.loop(self.test_one, items, *args)

    def dg_train(self, *args):
        if not args:
            return self.loop(self.dg_train, [(s,) for s in self.seeds])
        self.require(args, 1, "SEED [GPU]")
        seed, gpu = (list(args) + [None])[:2]
        return self.run(self.s.run_dir("dg", "train", self.src, seed), self.src, seed, "all",
                        f"{self.label('dg-train')} {self.src} seed{seed}", gpu)

    def dg_test(self, *args):
        if len(args) < 2:
            targets = self.env.get("DG_TARGETS", "").split() or catalog.DG_TARGETS
            return self.loop(self.dg_test, [(t, s) for t in targets for s in self.seeds], *args[:1])
        self.require(args, 2, "TARGET SEED [GPU]")
        t, seed, gpu = (list(args) + [None])[:3]
        return self.run(self.s.run_dir("dg", "test", t, seed), t, seed, "all",
                        f"{self.label('dg-test')} {self.src} -> {t} seed{seed}", gpu,
                        self.s.run_dir("dg", "train", self.src, seed),
                        f"no trained {self.src} model for seed{seed} (run dg_train first)")

    def guarded(self, action, *args):
        try:
            return action(*args)
        except (Failure, catalog.CatalogError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1


def parse(method, multilabel, args):
    """``parse_results.py`` over ``$OUTPUT`` (METHOD's trainer only unless METHOD is ``all``)."""
    from cpt.cli.results.parse import main as parse_main
    out = os.environ.get("OUTPUT") or os.path.join(REPO_ROOT, "output")
    if method != "all":
        m = catalog.get_method(method)
        args, multilabel = ["--trainer", m.trainer, *args], multilabel or m.multilabel
    if not multilabel:
        return parse_main([out, *args])
    rc = parse_main([out, "--multilabel", *args])
    if rc == 0 and os.path.isdir(os.path.join(out, "dg")):
        print(flush=True)
        rc = parse_main([out, "--dg", *args])
    return rc


ACTIONS = ("train", "train_datasets", "test", "test_datasets", "dg_train", "dg_test", "parse")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--multilabel", action="store_true")
    p.add_argument("--prog", default="drive.py", help="script name for usage messages")
    p.add_argument("method")
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("args", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    load_plugins()
    try:
        a.method = a.method or catalog.default_method()  # METHOD unset in scripts/multilabel/
        if a.action == "parse":
            return parse(a.method, a.multilabel, a.args)
        drv = Driver(a.method, a.multilabel, a.prog)
    except (Failure, catalog.CatalogError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return drv.guarded(getattr(drv, a.action), *a.args)


if __name__ == "__main__":
    sys.exit(main())
