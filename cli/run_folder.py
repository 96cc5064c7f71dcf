"""What a run folder holds against what a command would run (``engine/identity.py``): the identity
of a resolved config, and the refusal to resume a checkpoint or replace a finished ``results.json``
of another fingerprint or seed."""
import os

from .args import _hoist_flags, build_parser, setup_cfg


def trainer_node(cfg):
    """The ``TRAINER.<NODE>`` the configured trainer reads (its ``cfg_node``; '' when it has none)."""
    from .. import trainers  # noqa: F401  (registers the trainers)
    from ..engine.trainer import TRAINER_REGISTRY

    return getattr(TRAINER_REGISTRY.get(cfg.TRAINER.NAME), "cfg_node", "") or ""


def config_identity(cfg):
    """``(identity, fingerprint)`` of a resolved config (``engine/identity.py``)."""
    from ..engine.identity import fingerprint, run_identity

    identity = run_identity(cfg, trainer_node(cfg))
    return identity, fingerprint(identity)


def identity_of_argv(argv):
    """``(identity, fingerprint, seed)`` of the run that ``train.py argv`` would start (nothing is
    built; plugins named by ``--plugin`` are loaded). The drivers compare it with a finished run's."""
    from .plugins import load_plugins

    parser = build_parser()
    args = parser.parse_args(_hoist_flags(parser, [str(a) for a in argv]))
    load_plugins(args.plugin.split(","))
    cfg = setup_cfg(args)
    return (*config_identity(cfg), cfg.SEED)


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

    from ..engine.checkpoint import latest_checkpoint

    for marker in sorted(glob.glob(os.path.join(glob.escape(folder), "*", "checkpoint"))):
        path = latest_checkpoint(os.path.dirname(marker))
        if path:
            return path
    return None


def check_run_folder(cfg, args):
    """Refuse (:class:`RunMismatch`, exit 2) to resume a checkpoint, or to replace a finished
    ``results.json``, of another fingerprint or seed; nothing in the folder is touched. A checkpoint
    written before fingerprints existed resumes as before."""
    from ..engine.checkpoint import load_checkpoint
    from ..engine.identity import format_diff, identity_diff

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
