"""Train or evaluate a prompt learner (flag-compatible with CoOp/MaPLe's train.py).

Config merge order: engine defaults, the trainers' and the datasets' keys (``cli/args.py``),
``--dataset-config-file``, ``--config-file``, ``--calib-config-file``, flags,
trailing ``KEY VALUE`` opts. Each run writes ``log.txt`` and ``results.json``
(status, metrics in percent, wall time) into ``--output-dir``.
"""
import hashlib
import os
import sys
import time
import traceback

from .args import _hoist_flags, build_parser, setup_cfg
from .run_folder import check_run_folder, config_identity


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0] if path else ""


def run_metadata(cfg, args):
    from ..engine.config import calib_name

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
        # the checkpoints this run wrote (training) or evaluated (--model-dir); None for zero-shot evaluation
        "model_dir": os.path.abspath(args.model_dir or cfg.OUTPUT_DIR) if args.model_dir or not args.eval_only
        else None,
        "config_hash": hashlib.sha256(dump.encode()).hexdigest()[:16],
        "fingerprint": fp,
        "identity": identity,
    }


def write_results(cfg, meta, status, metrics=None, extra=None, error=None, start=None):
    from ..engine.utils import versions, write_json

    out = {**meta, "status": status, "metrics": metrics or {},
           "wall_time_s": round(time.time() - start, 3) if start else None, "versions": versions(), **(extra or {})}
    if error:
        out["error"] = error
    write_json(out, os.path.join(cfg.OUTPUT_DIR, "results.json"))


def arguments_block(args):
    """Dassl's ``** Arguments **`` block that opens ``log.txt``: every flag, ``name: value``, sorted."""
    rows = [f"{k}: {v}" for k, v in sorted(vars(args).items())]
    return "\n".join(["***************", "** Arguments **", "***************", *rows])


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
    from ..calibration.plots import save_reliability_diagram

    path = os.path.join(cfg.OUTPUT_DIR, f"reliability_{split}.png")
    from ..engine.config import calib_name

    title = f"{cfg.TRAINER.NAME} + {calib_name(cfg)} on {cfg.DATASET.NAME} ({cfg.DATASET.SUBSAMPLE_CLASSES}, {split})"
    save_reliability_diagram(conf, correct, path, title=title)
    return os.path.basename(path)


def _save_outputs(cfg, trainer, split):
    """Write ``outputs_<split>.npz`` (``TEST.SAVE_OUTPUTS``): the evaluated scores, labels, index."""
    scores = getattr(trainer, "last_scores", None)
    if not cfg.TEST.SAVE_OUTPUTS or scores is None:
        return None
    import numpy as np

    from ..calibration.fileio import atomic_write_with

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

    from .. import (
        datasets,  # noqa: F401  (registers the datasets)
        trainers,  # noqa: F401  (registers the trainers)
    )
    from ..engine.data import DATASET_REGISTRY
    from ..engine.evaluation import EVALUATOR_REGISTRY
    from ..engine.runlock import RunLock
    from ..engine.trainer import TRAINER_REGISTRY
    from ..engine.utils import set_random_seed
    from .catalog import methods_of_trainer

    # Fail fast on names, before any work.
    TRAINER_REGISTRY.get(cfg.TRAINER.NAME)
    DATASET_REGISTRY.get(cfg.DATASET.NAME)
    EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)
    if args.eval_only and not args.model_dir and not any(m.eval_only for m in methods_of_trainer(cfg.TRAINER.NAME)):
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


def _preflight(cfg, args):
    """Value checks that need no data: a bad value fails before the output folder is touched."""
    from ..calibration.posthoc import build_posthoc
    from ..calibration.regularizers import build_regularizers
    from ..engine.config_check import check_values

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

    from ..engine.trainer import build_trainer
    from ..engine.utils import collect_env_info, remove_partial_writes, setup_logger

    if rank == 0:
        remove_partial_writes(cfg.OUTPUT_DIR)  # this run holds the folder's lock
    logger = setup_logger(cfg.OUTPUT_DIR, rank=rank)
    meta = run_metadata(cfg, args)
    if rank == 0:  # a finished record of this folder never outlives the start of a new run in it
        write_results(cfg, meta, "running", start=start)
    logger.info(arguments_block(args))
    logger.info("************\n** Config **\n************\n" + cfg.dump())
    logger.info(f"Run fingerprint {meta['fingerprint']} (engine/identity.py: the config less the keys that "
                f"cannot change a result)")
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
        from .plugins import load_plugins

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
