"""The command line's arguments and config: CoOp/MaPLe's flags, flags written after the ``KEY VALUE``
pairs, and the merge order of ``setup_cfg`` (engine defaults, the keys the trainers and the datasets
declare, ``--dataset-config-file``, ``--config-file``, ``--calib-config-file``, flags, trailing
``KEY VALUE`` opts)."""
import argparse
import os
import sys


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
    from ..engine.config import resource_path

    shipped = resource_path(os.path.normpath(path))
    return shipped if os.path.isfile(shipped) else path


# flag -> the config key it sets when given
FLAG_KEYS = (("root", "DATASET.ROOT"), ("output_dir", "OUTPUT_DIR"), ("resume", "RESUME"),
             ("source_domains", "DATASET.SOURCE_DOMAINS"), ("target_domains", "DATASET.TARGET_DOMAINS"),
             ("transforms", "INPUT.TRANSFORMS"), ("trainer", "TRAINER.NAME"), ("backbone", "MODEL.BACKBONE.NAME"))


def setup_cfg(args):
    from .. import datasets
    from ..engine.config import get_cfg_default
    from ..engine.config_check import merge_file, merge_opts
    from ..trainers.config import extend_cfg

    cfg = get_cfg_default()
    extend_cfg(cfg)  # the keys the trainers declare
    datasets.extend_cfg(cfg)  # and the datasets
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
