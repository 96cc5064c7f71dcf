"""A run's identity: the resolved config less the keys that cannot change a result, and its fingerprint.

``run_identity(cfg, trainer_node)`` flattens the frozen config to ``{"OPTIM.LR": 0.002, ...}`` (JSON
values: tuples become lists) and drops

- :data:`NON_RESULT_KEYS`: where things are written or read from (output folder, resume folder,
  dataset root, cache folder and its size, whether the frozen-feature cache is used), how often the
  log prints and checkpoints are kept, loader workers, pinned memory, and the extra files a run may
  write (reliability diagram, saved scores);
- the Dassl keys accepted and ignored (``engine.config.DASSL_IGNORED``);
- ``SEED``: seeds of one experiment share a fingerprint (the parser averages them); a resume
  compares the seed separately;
- ``TRAINER.<NODE>`` nodes of other trainers (only ``trainer_node``'s keys count) and ``CALIB.<NAME>``
  nodes of calibrators that are not active (only those of ``CALIB.METHOD`` and ``CALIB.POSTHOC``).

``fingerprint(identity)`` is the first 16 hex digits of the SHA-256 of the sorted JSON. Checkpoints
and ``results.json`` store both (docs/design.md section 7).
"""
import hashlib
import json
import os

NON_RESULT_KEYS = frozenset({
    "OUTPUT_DIR", "RESUME", "CACHE_DIR", "DATASET.ROOT", "TRAIN.PRINT_FREQ", "TRAIN.CHECKPOINT_FREQ",
    "DATALOADER.NUM_WORKERS", "DATALOADER.PIN_MEMORY", "DATALOADER.PERSISTENT_WORKERS",
    "TEST.CACHE_FEATURES", "TEST.CACHE_MAX_MB", "TEST.RELIABILITY_DIAGRAM", "TEST.SAVE_OUTPUTS", "SEED",
})


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def flatten(node, prefix=""):
    """``{"A.B.C": value}`` of a (yacs) config tree."""
    out = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = _plain(value)
    return out


def _active_calibrators(cfg):
    names = {str(m).upper() for m in cfg.CALIB.METHOD}
    if str(cfg.CALIB.POSTHOC).lower() != "none":
        names.add(str(cfg.CALIB.POSTHOC).upper())
    return names


def run_identity(cfg, trainer_node=""):
    """The flattened config keys that can change a result (module docstring), sorted by name."""
    from .config import DASSL_IGNORED

    active = _active_calibrators(cfg)
    keep = {}
    for key, value in flatten(cfg).items():
        parts = key.split(".")
        if key in NON_RESULT_KEYS or key in DASSL_IGNORED:
            continue
        if parts[0] == "TRAINER" and len(parts) > 2 and parts[1] != trainer_node:
            continue
        if parts[0] == "CALIB" and len(parts) > 2 and parts[1] not in active:
            continue
        keep[key] = value
    return dict(sorted(keep.items()))


def fingerprint(identity):
    """16 hex digits naming ``identity`` (equal identities, equal fingerprints)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


_ABSENT = "<absent>"


def identity_diff(old, new, include_absent=False):
    """``[(key, old value, new value)]`` of the keys whose values differ. A key that only one side has
    was added (or removed) by a change of the code, which then behaved as its default: it counts
    only with ``include_absent`` (shown as ``<absent>``), so older runs still resume and skip."""
    keys = sorted(set(old) | set(new)) if include_absent else sorted(set(old) & set(new))
    return [(k, old.get(k, _ABSENT), new.get(k, _ABSENT)) for k in keys
            if old.get(k, _ABSENT) != new.get(k, _ABSENT)]


def format_diff(diff, old_label="before", new_label="now", limit=6):
    """One line: ``OPTIM.LR 0.002 (before) vs 0.05 (now); ...`` for at most ``limit`` keys."""
    def show(v):
        return v if v == _ABSENT else repr(v) if isinstance(v, str) else json.dumps(v)

    parts = [f"{k} {show(a)} ({old_label}) vs {show(b)} ({new_label})" for k, a, b in diff[:limit]]
    more = f"; and {len(diff) - limit} more" if len(diff) > limit else ""
    return "; ".join(parts) + more


class IdentityMixin:
    """What a trainer's checkpoints hold about the run (:meth:`checkpoint_extra`): fingerprint, identity,
    seed, class names, and the best validation result with its epoch; read back on resume
    (:meth:`restore_extra`) and checked on load (:meth:`check_classes`). Needs ``cfg``, ``classnames``,
    ``output_dir``, ``best_result``/``best_epoch`` and ``cfg_node`` (``''`` when the trainer has none)."""

    def init_identity(self, cfg):
        self.best_result, self.best_epoch = float("-inf"), None
        self.identity = run_identity(cfg, getattr(self, "cfg_node", "") or "")
        self.fingerprint = fingerprint(self.identity)

    def class_specific_state(self):
        """Hook: a description (e.g. ``"TRAINER.COOP.CSC"``) when the learnable state holds one entry per
        class, so that it means nothing for other classes; None when it is shared by all classes."""
        return None

    def checkpoint_extra(self):
        return {"fingerprint": self.fingerprint, "identity": self.identity, "seed": self.cfg.SEED,
                "classnames": list(self.classnames), "best_val": self.best_result, "best_epoch": self.best_epoch}

    def restore_extra(self, ckpt):
        """The best validation result so far comes back with the epoch (``TEST.FINAL_MODEL best_val``);
        a checkpoint written before it was stored falls back to ``model-best``'s own value."""
        from .checkpoint import load_checkpoint  # torch: not needed by the parser's fingerprints

        if "best_val" in ckpt:
            self.best_result, self.best_epoch = ckpt["best_val"], ckpt.get("best_epoch")
            return
        for name in self.get_model_names()[:1]:
            best = os.path.join(self.output_dir, name, "model-best.pth.tar")
            if os.path.isfile(best):
                old = load_checkpoint(best)
                if isinstance(old.get("val_result"), (int, float)):
                    self.best_result, self.best_epoch = old["val_result"], old.get("epoch")

    def check_classes(self, ckpt, path):
        what = self.class_specific_state()
        saved = ckpt.get("classnames")
        if what is None or saved is None or list(saved) == list(self.classnames):
            return
        from .checkpoint import CheckpointError

        first = next((i for i, (a, b) in enumerate(zip(saved, self.classnames)) if a != b), None)
        where = (f"first difference at class {first}: {saved[first]!r} (checkpoint) vs {self.classnames[first]!r} "
                 f"(this run)" if first is not None else "one list extends the other")
        raise CheckpointError(
            f"checkpoint {path} holds class-specific parameters ({what}) of {len(saved)} classes, but this run "
            f"evaluates {len(self.classnames)} classes; {where}. Class-specific context cannot be applied to "
            f"other classes")
