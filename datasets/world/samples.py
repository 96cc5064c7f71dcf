"""Samples and splits: one image per key, the pretraining pools, and the CoOp-format split
folders the registered datasets read (:mod:`cpt.datasets.shapeworld`)."""

from __future__ import annotations

import os

import numpy as np

from ...calibration.fileio import atomic_write_json
from .captions import scene_caption_description
from .draw import render_image, render_scene
from .spec import (
    IMAGE_SIZE,
    N_CLASSES,
    RENDERINGS,
    WORLD_NAMES,
    WORLD_SEED,
    long_tail_weights,
    multi_hot,
    rendering_of,
    rng_for,
    sample_scene_labels,
)


def single_sample(seed, stream, index, variant="clean", label=None):
    """Image ``index`` of a stream. With ``label=None`` the label is drawn from the key."""
    if label is None:
        rng = rng_for(seed, stream, index)
        label = int(rng.integers(N_CLASSES))
    else:
        rng = rng_for(seed, stream, label, index)
    img, meta = render_image(label, rng, variant)
    return img, label, meta, rng


def scene_sample(seed, stream, index, variant="clean", min_objects=2, max_objects=4):
    rng = rng_for(seed, stream, index)
    labels = sample_scene_labels(rng, min_objects, max_objects)
    img, meta = render_scene(labels, rng, variant)
    return img, labels, meta, rng


def rendered_scene_sample(seed, split, index, rendering, min_objects=2, max_objects=4):
    """Scene ``index`` of split ``split`` of the rendered world (:class:`ShapeWorldRender`).

    ``"train"``: long-tailed labels (:func:`long_tail_weights`), stream ``scene_train_lt``.
    ``"val"``/``"test"``: uniform labels from the ``scene_val``/``scene_test`` streams, i.e. the
    same scenes as ``ShapeWorldML``'s split, drawn in ``rendering``.
    Returns ``(image, labels, meta)``.
    """
    if rendering_of(rendering) is None:
        raise ValueError(f"rendered_scene_sample: rendering must be one of {sorted(RENDERINGS)}, "
                         f"got {rendering!r}")
    if split == "train":
        rng = rng_for(seed, "scene_train_lt", index)
        labels = sample_scene_labels(rng, min_objects, max_objects, weights=long_tail_weights())
    elif split in ("val", "test"):
        rng = rng_for(seed, f"scene_{split}", index)
        labels = sample_scene_labels(rng, min_objects, max_objects)
    else:
        raise ValueError(f"rendered_scene_sample: split must be train, val or test, got {split!r}")
    img, meta = render_scene(labels, rng, rendering)
    return img, labels, meta


def generate_single_pool(seed, n, stream="pretrain", variant="clean"):
    """n single-object images (uint8 N x H x W x 3), labels (int64) and metas."""
    imgs = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    metas = []
    for i in range(n):
        img, lab, meta, _ = single_sample(seed, stream, i, variant)
        imgs[i], labels[i] = img, lab
        metas.append(meta)
    return imgs, labels, metas


def generate_class_balanced(seed, split, n_per_class, variant="clean"):
    """n_per_class images of every class from stream ``split`` ('train'|'val'|'test').

    Order: class-major (label 0 first). Returns (uint8 images, int64 labels).
    """
    imgs = np.empty((n_per_class * N_CLASSES, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(N_CLASSES, dtype=np.int64), n_per_class)
    for i, lab in enumerate(labels):
        imgs[i] = single_sample(seed, split, i % n_per_class, variant, label=int(lab))[0]
    return imgs, labels


def generate_scene_pool(seed, n, stream="pretrain_scene", variant="clean",
                        min_objects=2, max_objects=4):
    """n scene images, their label lists and metas."""
    imgs = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    labels, metas = [], []
    for i in range(n):
        img, labs, meta, _ = scene_sample(seed, stream, i, variant, min_objects, max_objects)
        imgs[i] = img
        labels.append(labs)
        metas.append(meta)
    return imgs, labels, metas


# ----------------------------------------------------------------------------- materialise
def _save_png(arr, path):
    from PIL import Image
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))
    img.save(path, format="PNG", optimize=False, compress_level=6)


def materialize_split(root, variant="clean", seed=WORLD_SEED, n_train_per_class=16,
                      n_val_per_class=4, n_test_per_class=50, split_file="split_ShapeWorld.json"):
    """Write a single-label world under ``root`` and return the split-file path.

    Layout: ``root/images/<split>/<label:02d>_<name>/<k:04d>.png`` and ``root/<split_file>`` in
    CoOp's format ``{"train"|"val"|"test": [[relative_path, label, classname], ...]}`` where
    classname is the made-up name. Image k of class c in split X is the same for every call with
    the same seed (it does not depend on the other counts); ``variant`` picks "clean" or "cast".
    """
    out = {}
    for split, n in (("train", n_train_per_class), ("val", n_val_per_class),
                     ("test", n_test_per_class)):
        items = []
        for lab in range(N_CLASSES):
            for k in range(n):
                img = single_sample(seed, split, k, variant, label=lab)[0]
                rel = f"images/{split}/{lab:02d}_{WORLD_NAMES[lab]}/{k:04d}.png"
                _save_png(img, os.path.join(root, rel))
                items.append([rel, lab, WORLD_NAMES[lab]])
        out[split] = items
    path = os.path.join(root, split_file)
    atomic_write_json(out, path, indent=None)
    return path


def _write_scene_split(root, split_file, counts, draw, head=None, train_counts=False):
    # scenes ``draw(split, i) -> (image, labels)`` as PNGs plus the split JSON (keys of ``head``
    # first, "train_counts" last when asked for); returns the JSON's path
    out = dict(head or {})
    for split, n in zip(("train", "val", "test"), counts):
        items = []
        for i in range(n):
            img, labs = draw(split, i)
            rel = f"images/{split}/{i:05d}.png"
            _save_png(img, os.path.join(root, rel))
            items.append([rel, multi_hot(labs), scene_caption_description(labs)])
        out[split] = items
    if train_counts:
        out["train_counts"] = [int(v) for v in np.sum([y for _, y, _ in out["train"]], axis=0)]
    path = os.path.join(root, split_file)
    atomic_write_json(out, path, indent=None)
    return path


def materialize_rendered_split(root, rendering="vintage", seed=WORLD_SEED, n_train=1200, n_val=300,
                               n_test=1000, split_file="split_ShapeWorldRender.json"):
    """Write the rendered multi-label world (long-tailed train, uniform val/test) under ``root``.

    Same JSON layout as :func:`materialize_multilabel_split`, plus ``"rendering"`` (the rendering
    name) and ``"train_counts"`` (positives per class in the training split). Returns the path.
    """
    return _write_scene_split(root, split_file, (n_train, n_val, n_test),
                              lambda split, i: rendered_scene_sample(seed, split, i, rendering)[:2],
                              {"rendering": rendering}, train_counts=True)


def materialize_multilabel_split(root, variant="clean", seed=WORLD_SEED, n_train=1000, n_val=200,
                                 n_test=1000, split_file="split_ShapeWorldML.json",
                                 min_objects=2, max_objects=4):
    """Write a multi-label (scene) world under ``root``; return the split-file path.

    JSON: ``{"train"|"val"|"test": [[relative_path, multi_hot, caption], ...]}`` with multi_hot a
    list of 64 ints (1 positive, 0 negative, label order of :data:`WORLD_NAMES`) and caption the
    deterministic description caption of the scene. Class names: :func:`class_names`.
    """
    return _write_scene_split(root, split_file, (n_train, n_val, n_test), lambda split, i: scene_sample(
        seed, f"scene_{split}", i, variant, min_objects, max_objects)[:2])
