"""The offline world as registered datasets: ``ShapeWorld`` (64-way) and ``ShapeWorldML`` (scenes).

The generator lives in ``datasets/world/``. Splits are materialised once as PNG files plus a split
file into ``<cache>/world/<name>_<variant>_seed<S>/`` (or read from ``$DATA/shapeworld/<variant>/``
when that folder exists), so the normal loading path and transforms run. ``DATASET.VARIANT``:
``cast`` (the downstream task: each class's colour is pulled 35% toward a fixed partner colour;
``cast<s>``, e.g. ``cast0.2``, sets another strength) or ``clean`` (drawn like the pretraining images).

Base/new: the first 32 labels are the classes with even ``colour_idx + shape_idx``, so the ceil rule
gives a checkerboard split with 4 classes of every colour and every shape per side. Class names are
the made-up one-token names; the prompt is "a photo of a {}.".
"""
import contextlib
import json
import os
import shutil
import socket
import tempfile
import time

import numpy as np

from ..engine.config import resolve_cache_dir
from ..engine.data import DATASET_REGISTRY, DatasetBase, Datum, apply_fewshot_and_subsample, read_split
from ..engine.data.datasets import class_split_indices
from ..engine.runlock import is_stale, process_start_time
from ..engine.utils import get_logger
from . import common, world
from .captions import CaptionLabels

SINGLE_COUNTS = {"n_train_per_class": 32, "n_val_per_class": 8, "n_test_per_class": 50}
SCENE_COUNTS = {"n_train": 1200, "n_val": 300, "n_test": 1000}
RENDER_COUNTS = {"n_train": 1200, "n_val": 300, "n_test": 1000}


BUILDER = ".builder"  # in a .building-* folder: its builder's pid, host and start (engine/runlock.py's record)
UNRECORDED_STALE_S = 24 * 3600  # a .building-* folder without a record of this host is stale when this old


def _builder_record():
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "start": process_start_time(pid)}


def remove_stale_builds(folder):
    """Remove the ``.building-*`` folders in ``folder`` that a killed build left, log them, return their
    paths. Stale: its ``BUILDER`` record names a process of this host that no longer runs (or a reused pid);
    without such a record (another host's build, one killed before writing it), untouched for a day.
    A live builder's folder, on this host or (for a day) another, is left alone."""
    removed = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        path = os.path.join(folder, name)
        if not name.startswith(".building-") or not os.path.isdir(path):
            continue
        try:
            with open(os.path.join(path, BUILDER)) as f:
                holder = json.load(f)
        except (OSError, ValueError):
            holder = None
        try:
            if isinstance(holder, dict) and holder.get("host") == socket.gethostname():
                stale = is_stale(holder)
            else:
                stale = time.time() - os.path.getmtime(path) > UNRECORDED_STALE_S
        except OSError:  # finished or removed meanwhile
            continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.exists(path):
                removed.append(path)
    if removed:
        get_logger().info(f"World cache: removed {len(removed)} unfinished build folder(s) whose builder is gone: "
                          f"{', '.join(removed)}")
    return removed


def _materialised_dir(cfg, kind, variant, writer, split_file):
    """Folder holding ``split_file``; generates it atomically on first use (in a ``.building-*`` folder
    holding a ``BUILDER`` record, then renamed), after removing the stale builds of killed processes."""
    root = os.path.expanduser(cfg.DATASET.ROOT) if cfg.DATASET.ROOT else ""
    user = os.path.join(root, kind.lower(), variant) if root else ""
    if user and os.path.isfile(os.path.join(user, split_file)):
        return user
    # the folder names the cast strength, so a change of CAST_STRENGTH never reuses stale images
    tag = f"cast{world.cast_strength(variant):g}" if variant.startswith("cast") else variant
    if world.rendering_of(variant) is not None:  # and the rendering's parameters
        tag += "-" + world.rendering_fingerprint(variant)
    target = os.path.join(resolve_cache_dir(cfg), "world", f"{kind.lower()}_{tag}_seed{world.WORLD_SEED}")
    remove_stale_builds(os.path.dirname(target))
    if os.path.isfile(os.path.join(target, split_file)):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(target), prefix=".building-")
    try:
        with open(os.path.join(tmp, BUILDER), "w") as f:
            json.dump(_builder_record(), f)
        writer(tmp)
        os.remove(os.path.join(tmp, BUILDER))
        with contextlib.suppress(OSError):  # another process finished first: its folder is used
            os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after the rename
    return target


def _read_scene_split(folder, split_file):
    """``(train, val, test, captions)`` of a multi-label split file ``[[path, multi_hot, caption]]``."""
    with open(os.path.join(folder, split_file)) as f:
        split = json.load(f)

    def convert(items):
        return [Datum(os.path.join(folder, p), np.asarray(y, dtype=np.int64), 0, cap) for p, y, cap in items]

    captions = [(cap, np.asarray(y, dtype=np.int64)) for _, y, cap in split["train"]]
    return convert(split["train"]), convert(split["val"]), convert(split["test"]), captions


VARIANT_KEY = {"VARIANT": "cast"}  # DATASET.VARIANT (module docstring), declared by the world's datasets


def _variant(cfg):
    return cfg.DATASET.get("VARIANT", VARIANT_KEY["VARIANT"])


def _check_variant(variant):
    try:
        world.cast_strength(variant)
    except ValueError as err:
        raise ValueError(f"DATASET.VARIANT: {err}") from None


@DATASET_REGISTRY.register()
class ShapeWorld(DatasetBase):
    """64 single-object classes (8 colours x 8 shapes) of the offline world."""

    split_file = "split_ShapeWorld.json"
    config_keys = VARIANT_KEY
    synonyms_file = "synonyms_shapeworld.json"

    def __init__(self, cfg):
        variant = _variant(cfg)
        _check_variant(variant)
        folder = _materialised_dir(
            cfg, "ShapeWorld", variant,
            lambda d: world.materialize_split(d, variant=variant, seed=world.WORLD_SEED,
                                              split_file=self.split_file, **SINGLE_COUNTS),
            self.split_file)
        train, val, test = read_split(os.path.join(folder, self.split_file), folder)
        train, val, test, classnames = apply_fewshot_and_subsample(
            cfg, f"ShapeWorld_{variant}", train, val, test, list(world.WORLD_NAMES))
        super().__init__(train_x=train, val=val, test=test, classnames=classnames)


@DATASET_REGISTRY.register()
class ShapeWorldML(DatasetBase, CaptionLabels):
    """Multi-object scenes (2-4 objects) with multi-hot labels (1 / 0, no unknowns) over the 64 world
    classes; groups ``base`` and ``new`` (ceil split) when ``SUBSAMPLE_CLASSES`` is ``all``."""

    split_file = "split_ShapeWorldML.json"
    config_keys = VARIANT_KEY
    synonyms_file = "synonyms_shapeworld.json"

    def __init__(self, cfg):
        name, variant = type(self).__name__, _variant(cfg)
        self.check_variant(variant)
        folder = _materialised_dir(cfg, name, variant, lambda d: self.materialize(d, variant), self.split_file)
        train, val, test, self._captions = _read_scene_split(folder, self.split_file)
        groups = dict(self.groups_of(cfg, train))  # on the full training split
        n = len(world.WORLD_NAMES)
        train, val, test, classnames = apply_fewshot_and_subsample(cfg, f"{name}_{variant}", train, val, test,
                                                                   list(world.WORLD_NAMES))
        if cfg.DATASET.SUBSAMPLE_CLASSES == "all":
            groups.update({"base": class_split_indices(n, "base"), "new": class_split_indices(n, "new")})
        super().__init__(train_x=train, val=val, test=test, classnames=classnames, groups=groups or None)

    check_variant = staticmethod(_check_variant)

    def materialize(self, folder, variant):
        world.materialize_multilabel_split(folder, variant=variant, seed=world.WORLD_SEED,
                                           split_file=self.split_file, **SCENE_COUNTS)

    def groups_of(self, cfg, train):
        return {}

    def captions(self, limit=0):
        """``[(caption, multi_hot over all 64 classes), ...]``: with ``limit`` 0 the training scenes'
        description captions; with N > 0 (``DATASET.NUM_CAPTIONS``) the first N captions of the world's
        text corpus (``world.caption_corpus``, seed ``WORLD_SEED``; names and descriptions mixed)."""
        if int(limit or 0) > 0:
            return [(cap, np.asarray(world.multi_hot(labs), dtype=np.int64))
                    for cap, labs in world.caption_corpus(world.WORLD_SEED, int(limit))]
        return list(self._captions)


@DATASET_REGISTRY.register()
class ShapeWorldRender(ShapeWorldML):
    """The rendered multi-label world: scenes drawn in one named rendering (``DATASET.VARIANT``,
    default config ``vintage``) that the default prompt "a photo of a {}." does not name.

    Training scenes are long-tailed (Zipf class frequencies, :func:`datasets.world.long_tail_weights`);
    validation and test scenes have uniform labels (``ShapeWorldML``'s, re-drawn in the rendering).
    Labels: 1 positive, 0 negative. ``groups``: head/medium/tail (``datasets.common.lt_groups``) and,
    with ``SUBSAMPLE_CLASSES all``, ``base`` and ``new``. ``captions()``: as ``ShapeWorldML``.
    """

    split_file = "split_ShapeWorldRender.json"

    def check_variant(self, variant):
        if world.rendering_of(variant) is None:
            raise ValueError(f"DATASET.VARIANT: ShapeWorldRender needs a rendering, one of "
                             f"{sorted(world.RENDERINGS)}; got {variant!r}")

    def materialize(self, folder, variant):
        world.materialize_rendered_split(folder, rendering=variant, seed=world.WORLD_SEED,
                                         split_file=self.split_file, **RENDER_COUNTS)

    def groups_of(self, cfg, train):
        return common.lt_groups(train, cfg.DATASET.SUBSAMPLE_CLASSES)
