"""Train or evaluate a prompt learner (flag-compatible with CoOp/MaPLe's train.py).

Config merge order: engine defaults, trainer keys (``trainers.config.extend_cfg``),
``--dataset-config-file``, ``--config-file``, ``--calib-config-file``, flags,
trailing ``KEY VALUE`` opts. Each run writes ``log.txt`` and ``results.json``
(status, metrics in percent, wall time) into ``--output-dir``.
"""
import argparse
import hashlib
import os
import sys
import time
import traceback


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """One line and exit status 2 (argparse prints the whole usage block)."""
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser():
    p = _Parser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=str, default="", help="path to the datasets")
    p.add_argument("--output-dir", type=str, default="", help="output directory")
    p.add_argument("--resume", type=str, default="", help="checkpoint directory to resume from")
    p.add_argument("--seed", type=int, default=-1, help="seed (0 is valid; < 0: not seeded)")
    p.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    p.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    p.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    p.add_argument("--config-file", type=str, default="", help="method config (yaml)")
    p.add_argument("--dataset-config-file", type=str, default="", help="dataset config (yaml)")
    p.add_argument("--calib-config-file", type=str, default="", help="calibration preset (yaml)")
    p.add_argument("--trainer", type=str, default="", help="name of trainer")
    p.add_argument("--backbone", type=str, default="", help="name of CNN backbone")
    p.add_argument("--head", type=str, default="", help="accepted and ignored (Dassl's linear head; CLIP has none)")
    p.add_argument("--plugin", type=str, default="", help="comma-separated modules or .py files to import first "
                   "(they register extra trainers, regularizers, calibrators, datasets; also $CPT_PLUGINS)")
    p.add_argument("--eval-only", action="store_true", help="evaluation only")
    p.add_argument("--model-dir", type=str, default="", help="load model from this directory for eval-only mode")
    p.add_argument("--load-epoch", type=int, help="load model weights at this epoch for evaluation")
    p.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    p.add_argument("--debug", action="store_true",
                   help="on an error print the traceback too (also: environment variable CPT_DEBUG=1)")
    p.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                   help="modify config options using the command-line")
    return p


def resolve_config_path(path):
    """``path`` as given, else the shipped file of that name (``configs/...`` from any folder)."""
    if os.path.isfile(path) or os.path.isabs(path):
        return path
    import cpt

    shipped = cpt.resource_path(os.path.normpath(path))
    return shipped if os.path.isfile(shipped) else path


# flag -> the config key it sets when given
FLAG_KEYS = (("root", "DATASET.ROOT"), ("output_dir", "OUTPUT_DIR"), ("resume", "RESUME"),
             ("source_domains", "DATASET.SOURCE_DOMAINS"), ("target_domains", "DATASET.TARGET_DOMAINS"),
             ("transforms", "INPUT.TRANSFORMS"), ("trainer", "TRAINER.NAME"), ("backbone", "MODEL.BACKBONE.NAME"))


def setup_cfg(args):
    from cpt.engine.config import get_cfg_default
    from cpt.engine.config_check import merge_file, merge_opts
    from cpt.trainers.config import extend_cfg

    cfg = get_cfg_default()
    extend_cfg(cfg)
    for flag in ("--dataset-config-file", "--config-file", "--calib-config-file"):
        path = getattr(args, flag[2:].replace("-", "_"))
        if path:
            merge_file(cfg, resolve_config_path(path), flag)
    for flag, key in FLAG_KEYS:
        if getattr(args, flag):
            *parents, leaf = key.split(".")
            node = cfg
            for k in parents:
                node = node[k]
            setattr(node, leaf, getattr(args, flag))
    if args.seed is not None and args.seed >= 0:
        cfg.SEED = args.seed
    if args.head:
        print(f"warning: --head {args.head}: Dassl's linear head is accepted and ignored", file=sys.stderr)
    if args.opts:
        merge_opts(cfg, args.opts, flags=[o for a in build_parser()._actions for o in a.option_strings])
    cfg.freeze()
    return cfg


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0] if path else ""


def trainer_node(cfg):
    """The ``TRAINER.<NODE>`` the configured trainer reads (its ``cfg_node``; '' when it has none)."""
    from cpt import trainers  # noqa: F401  (registers the trainers)
    from cpt.engine.trainer import TRAINER_REGISTRY

    return getattr(TRAINER_REGISTRY.get(cfg.TRAINER.NAME), "cfg_node", "") or ""


def config_identity(cfg):
    """``(identity, fingerprint)`` of a resolved config (``engine/identity.py``)."""
    from cpt.engine.identity import fingerprint, run_identity

    identity = run_identity(cfg, trainer_node(cfg))
    return identity, fingerprint(identity)


def identity_of_argv(argv):
    """``(identity, fingerprint, seed)`` of the run that ``train.py argv`` would start (nothing is
    built; plugins named by ``--plugin`` are loaded). The drivers compare it with a finished run's."""
    from cpt.plugins import load_plugins

    parser = build_parser()
    args = parser.parse_args(_hoist_flags(parser, [str(a) for a in argv]))
    load_plugins(args.plugin.split(","))
    cfg = setup_cfg(args)
    return (*config_identity(cfg), cfg.SEED)


def run_metadata(cfg, args):
    from cpt.engine.config import calib_name

    dump = cfg.dump()
    identity, fp = config_identity(cfg)
    return {
        "trainer": cfg.TRAINER.NAME,
        "config": _stem(args.config_file) or cfg.TRAINER.NAME.lower(),
        "dataset": _stem(args.dataset_config_file) or cfg.DATASET.NAME,
        "dataset_name": cfg.DATASET.NAME,
        "shots": cfg.DATASET.NUM_SHOTS,
        "seed": cfg.SEED,
        "subsample": cfg.DATASET.SUBSAMPLE_CLASSES,
        "calibration": calib_name(cfg),
        "posthoc": cfg.CALIB.POSTHOC,
        "eval_only": bool(args.eval_only),
        "config_hash": hashlib.sha256(dump.encode()).hexdigest()[:16],
        "fingerprint": fp,
        "identity": identity,
    }


def write_results(cfg, meta, status, metrics=None, extra=None, error=None, start=None):
    from cpt.engine.utils import versions, write_json

    out = {**meta, "status": status, "metrics": metrics or {},
           "wall_time_s": round(time.time() - start, 3) if start else None, "versions": versions(), **(extra or {})}
    if error:
        out["error"] = error
    write_json(out, os.path.join(cfg.OUTPUT_DIR, "results.json"))


def _init_distributed():
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        return torch.distributed.get_rank()
    return 0


def _save_reliability(cfg, trainer, split):
    ev = trainer.evaluator
    conf, correct = getattr(ev, "confidences", None), getattr(ev, "correct", None)
    if not cfg.TEST.RELIABILITY_DIAGRAM or conf is None or correct is None:
        return None
    from cpt.calibration.plots import save_reliability_diagram

    path = os.path.join(cfg.OUTPUT_DIR, f"reliability_{split}.png")
    title = f"{cfg.TRAINER.NAME} {cfg.DATASET.NAME} ({cfg.DATASET.SUBSAMPLE_CLASSES})"
    save_reliability_diagram(conf, correct, path, title=title)
    return os.path.basename(path)


def _save_outputs(cfg, trainer, split):
    """Write ``outputs_<split>.npz`` (``TEST.SAVE_OUTPUTS``): the evaluated scores, labels, index."""
    scores = getattr(trainer, "last_scores", None)
    if not cfg.TEST.SAVE_OUTPUTS or scores is None:
        return None
    import numpy as np

    from cpt.fileio import atomic_write_with

    outputs = trainer.last_outputs
    arrays = dict(scores=scores.detach().float().cpu().numpy(), labels=outputs["labels"].cpu().numpy(),
                  index=outputs["index"].cpu().numpy())
    name = f"outputs_{split}.npz"
    atomic_write_with(lambda f: np.savez(f, **arrays), os.path.join(cfg.OUTPUT_DIR, name))
    return name


def main(args):
    start = time.time()
    cfg = setup_cfg(args)
    rank = _init_distributed()

    from cpt import datasets  # noqa: F401  (registers the datasets)
    from cpt import trainers  # noqa: F401  (registers the trainers)
    from cpt.engine.trainer import TRAINER_REGISTRY
    from cpt.engine.data import DATASET_REGISTRY
    from cpt.engine.evaluation import EVALUATOR_REGISTRY
    from cpt.engine.runlock import RunLock
    from cpt.engine.utils import set_random_seed

    # Fail fast on names, before any work.
    TRAINER_REGISTRY.get(cfg.TRAINER.NAME)
    DATASET_REGISTRY.get(cfg.DATASET.NAME)
    EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)
    if args.eval_only and not args.model_dir and cfg.TRAINER.NAME != "ZeroshotCLIP":
        raise ValueError("--eval-only needs --model-dir (the directory of a trained run)")
    _preflight(cfg, args)

    check_run_folder(cfg, args)  # before anything in the folder is touched
    if cfg.SEED >= 0:
        set_random_seed(cfg.SEED)  # same on every rank: identical initialisation
    lock = RunLock(cfg.OUTPUT_DIR).acquire() if rank == 0 else None
    try:
        return _run(cfg, args, rank, start)
    finally:
        if lock is not None:
            lock.release()


class RunMismatch(ValueError):
    """The output folder holds a run of another identity (``engine/identity.py``)."""


def _read_json(path):
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _folder_checkpoint(folder):
    """The latest checkpoint under ``folder/<model>/`` (as ``resume_model_if_exist`` would read), or None."""
    import glob

    from cpt.engine.checkpoint import latest_checkpoint

    for marker in sorted(glob.glob(os.path.join(glob.escape(folder), "*", "checkpoint"))):
        path = latest_checkpoint(os.path.dirname(marker))
        if path:
            return path
    return None


def check_run_folder(cfg, args):
    """Refuse (:class:`RunMismatch`, exit 2) to resume a checkpoint, or to replace a finished
    ``results.json``, of another fingerprint or seed; nothing in the folder is touched. A checkpoint
    written before fingerprints existed resumes as before."""
    from cpt.engine.checkpoint import load_checkpoint
    from cpt.engine.identity import format_diff, identity_diff

    identity, fp = config_identity(cfg)
    seen = []
    resume_dir = cfg.RESUME or cfg.OUTPUT_DIR
    ckpt_path = None if args.eval_only else _folder_checkpoint(resume_dir)
    if ckpt_path:
        ckpt = load_checkpoint(ckpt_path)
        seen.append((ckpt_path, ckpt.get("fingerprint"), ckpt.get("identity"), ckpt.get("seed")))
    res = _read_json(os.path.join(cfg.OUTPUT_DIR, "results.json"))
    if isinstance(res, dict) and res.get("status") == "finished":
        seen.append((os.path.join(cfg.OUTPUT_DIR, "results.json"), res.get("fingerprint"), res.get("identity"),
                     res.get("seed")))
    for path, old_fp, old_identity, old_seed in seen:
        if old_fp is None:
            continue
        diff = identity_diff(old_identity or {}, identity) if old_fp != fp else []
        if old_seed is not None and old_seed != cfg.SEED:
            diff.append(("SEED", old_seed, cfg.SEED))
        if diff:
            raise RunMismatch(
                f"{path} belongs to a run with other options: {format_diff(diff, 'there', 'this command')}; "
                f"run with that run's options to resume it, or choose another --output-dir")


def _preflight(cfg, args):
    """Value checks that need no data: a bad value fails before the output folder is touched."""
    from cpt.calibration.posthoc import build_posthoc
    from cpt.calibration.regularizers import build_regularizers
    from cpt.engine.config_check import check_values

    check_values(cfg)
    build_regularizers(list(cfg.CALIB.METHOD), cfg.CALIB)
    build_posthoc(cfg.CALIB.POSTHOC)
    if args.model_dir and not os.path.isdir(args.model_dir):
        raise FileNotFoundError(f"--model-dir {args.model_dir} does not exist")


def _log_file_only(logger, text):
    """Write ``text`` to the log file handlers only (a traceback for log.txt, not the terminal)."""
    import logging

    record = logging.LogRecord(logger.name, logging.ERROR, __file__, 0, text, None, None)
    for h in logger.handlers:
        if isinstance(h, logging.FileHandler):
            h.handle(record)


def _run(cfg, args, rank, start):
    import math

    from cpt.engine.trainer import build_trainer
    from cpt.engine.utils import collect_env_info, remove_partial_writes, setup_logger

    if rank == 0:
        remove_partial_writes(cfg.OUTPUT_DIR)  # this run holds the folder's lock
    logger = setup_logger(cfg.OUTPUT_DIR, rank=rank)
    meta = run_metadata(cfg, args)
    if rank == 0:  # a finished record of this folder never outlives the start of a new run in it
        write_results(cfg, meta, "running", start=start)
    logger.info(f"Run fingerprint {meta['fingerprint']} (engine/identity.py: the config less the keys that "
                f"cannot change a result)")
    logger.info("*** Config ***")
    logger.info(cfg.dump())
    logger.info("Collecting env info ...")
    logger.info("** System info **\n" + collect_env_info() + "\n")

    trainer = None
    try:
        trainer = build_trainer(cfg)
        if args.eval_only:
            if args.model_dir:
                trainer.load_model(args.model_dir, epoch=args.load_epoch)
            trainer.test()
        elif not args.no_train:
            trainer.train(0, cfg.OPTIM.MAX_EPOCH)
        if rank == 0 and (args.eval_only or not args.no_train) and not cfg.TEST.NO_TEST:
            split = cfg.TEST.SPLIT
            metrics = trainer.last_results.get(split, {})
            loaded = getattr(trainer, "loaded_epoch", None) if args.eval_only else None  # set by load_model
            epoch = loaded or getattr(trainer, "max_epoch", None)  # a training run's best-val reload keeps MAX_EPOCH
            extra = {"epoch": epoch, "num_classes": trainer.num_classes,
                     **_partial_training(cfg, args, trainer, logger),
                     "classnames": trainer.classnames, **getattr(trainer, "results_extra", lambda: {})()}
            for key, save in (("reliability_diagram", _save_reliability), ("outputs", _save_outputs)):
                name = save(cfg, trainer, split)
                if name:
                    extra[key] = name
            metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
            if bad:
                raise FloatingPointError(f"test metrics {', '.join(bad)} are not finite (the model's outputs are "
                                         f"NaN or inf); the run is not reported as finished")
            write_results(cfg, meta, "finished", metrics, extra, start=start)
    except KeyboardInterrupt as e:
        if rank == 0:
            epoch = getattr(trainer, "epoch", None)
            where = f" in epoch {epoch + 1}" if epoch is not None and not args.eval_only else ""
            sig = "SIGTERM" if isinstance(e, Terminated) else "SIGINT"
            write_results(cfg, meta, "interrupted", error=f"interrupted ({sig}){where}; re-run the same command "
                          "to resume from the last complete epoch", start=start)
            logger.info(f"Interrupted by {sig}{where}; re-run the same command to resume from the last complete "
                        f"epoch")
        raise
    except BaseException as e:
        if rank == 0:
            write_results(cfg, meta, "failed", error=error_text(e), start=start)
            _log_file_only(logger, traceback.format_exc())
        raise
    return trainer


def _partial_training(cfg, args, trainer, logger):
    """An ``--eval-only`` run of a model that trained fewer than ``OPTIM.MAX_EPOCH`` epochs (or of an
    earlier ``--load-epoch``): said in the log and in results.json."""
    trained, most = getattr(trainer, "trained_epochs", None), cfg.OPTIM.MAX_EPOCH
    if not args.eval_only or trained is None:
        return {}
    if trained < most:
        note = (f"the run in --model-dir {args.model_dir} trained {trained} of OPTIM.MAX_EPOCH {most} epochs "
                f"(it did not finish); evaluated its epoch {trainer.loaded_epoch}")
    elif args.load_epoch is not None and args.load_epoch < most:
        note = f"--load-epoch {args.load_epoch} is before OPTIM.MAX_EPOCH {most}"
    else:
        return {}
    logger.warning(f"Note: {note}")
    return {"partial_training": True, "note": note}


class Terminated(KeyboardInterrupt):
    """SIGTERM (what Slurm sends before it preempts or kills a job), handled like Ctrl-C: status
    ``interrupted``, a log line, exit status 143, and a resume as exact as after SIGINT."""


def _install_sigterm():
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    main_pid = os.getpid()

    def on_sigterm(signum, frame):
        if os.getpid() == main_pid:  # a DataLoader worker leaves it to the main process to stop it
            raise Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)


def _hoist_flags(parser, argv):
    """Flags written after the ``KEY VALUE`` pairs move before them, so ``train.py ... OPTIM.LR 0.1
    --eval-only`` means what it says. A known flag moves only from a key's position (a pair's value
    stays a value); an unknown one stays for the config merge to report."""
    actions = {o: a for a in parser._actions for o in a.option_strings}

    def width(i):  # tokens taken by the flag at argv[i], the flag included
        act = actions[argv[i].split("=", 1)[0]]
        if "=" in argv[i] or act.nargs == 0:
            return 1
        if act.nargs in ("+", "*"):
            j = i + 1
            while j < len(argv) and not argv[j].startswith("-") and not _is_key(argv[j]):
                j += 1
            return j - i
        return 2

    argv, i = list(argv), 0
    while i < len(argv) and argv[i].startswith("-"):  # the flags before the first KEY
        i += width(i) if argv[i].split("=", 1)[0] in actions else 1
    head, moved, tail = argv[:i], [], []
    while i < len(argv):
        if argv[i].split("=", 1)[0] in actions:
            n = width(i)
            moved += argv[i:i + n]
            i += n
        else:
            tail += argv[i:i + 2]
            i += 2
    return head + moved + tail


def _is_key(token):
    """A config key (``OPTIM.LR``), as opposed to a flag's value."""
    return "." in token and token.split(".", 1)[0].isupper()


# Errors that mean "this input cannot run" (exit status 2, one line); others are bugs (traceback).
INPUT_ERRORS = (KeyError, ValueError, OSError, RuntimeError, AssertionError, FloatingPointError, ImportError)


def error_text(e):
    """``<Type>: <message>`` of ``e``; for an error re-raised from a DataLoader worker, the original one."""
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    if "Original Traceback" in msg:  # the worker's traceback is in the message; its last line is the error
        return [ln for ln in msg.splitlines() if ln.strip()][-1]
    return f"{type(e).__name__}: {msg}"


def cli(argv=None):
    """The ``train.py`` / ``cpt-train`` command: exit 2 with one line on bad input."""
    parser = build_parser()
    args = parser.parse_args(_hoist_flags(parser, sys.argv[1:] if argv is None else argv))
    debug = args.debug or os.environ.get("CPT_DEBUG", "") not in ("", "0")
    try:
        import cpt

        cpt.check_imports()  # another module answering to one of our names: say which
        from cpt.plugins import load_plugins

        load_plugins(args.plugin.split(","))
        _install_sigterm()
        main(args)
    except (KeyboardInterrupt, *INPUT_ERRORS) as e:
        if debug:
            traceback.print_exc()
        if isinstance(e, Terminated):
            print("terminated (SIGTERM): results.json says 'interrupted'; re-run the same command to resume",
                  file=sys.stderr)
            sys.exit(143)
        if isinstance(e, KeyboardInterrupt):
            print("interrupted: results.json says 'interrupted'; re-run the same command to resume", file=sys.stderr)
            sys.exit(130)
        print(f"error: {error_text(e).splitlines()[0]}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
