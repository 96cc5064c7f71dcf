"""The offline world: a procedural image-caption generator of coloured shapes (docs/design.md §8).

Everything here is numpy + Pillow only (no engine/, no torch, no open_clip import), so the
pretraining script, the tests and the dataset module can all use it.

Classes
    64 classes = 8 colours x 8 shapes. Label order: the 32 classes with even
    ``(colour_idx + shape_idx)`` come first (row-major over colour, then shape), then the 32 odd
    ones. With the engine's rule "base = first ceil(n/2) labels" the base/new split is therefore
    the checkerboard on ``(colour_idx + shape_idx) % 2``: every colour and every shape has 4
    classes on each side (see :func:`base_new_split`).
    Each class has two class names: a description ("red circle", ``kind="description"``) and a
    made-up name, a single BPE token of open_clip's tokenizer that is no colour or shape word
    ("watt", ``kind="name"``). The downstream prompt is "a photo of a {name}.", so base and new
    class names share no words; the word "photo" never appears in pretraining captions.

Images
    RGB uint8, ``IMAGE_SIZE`` = 32 px. Nuisances: position, size, rotation (+-30 deg), object
    shading and colour jitter, background colour and texture (plain, gradient, striped, checked,
    noisy) and Gaussian pixel noise. Shapes are anti-aliased (2x2 supersampling).
    Every image is a pure function of an integer key ``(seed, stream, ...)`` fed to
    ``np.random.default_rng`` (no global RNG), so any image is reproducible on its own and the
    generator is byte-for-byte deterministic.

Variants
    ``"clean"``: drawn exactly like the pretraining images.
    ``"cast"``: the downstream shift. Each class has a fixed partner colour (another palette
    colour, chosen with a fixed seed, :data:`PARTNER`); the object colour becomes
    ``(1 - s) * colour + s * partner`` with ``s = CAST_STRENGTH = 0.35`` (see README, "The offline
    world", for how s was chosen). Clean and cast images
    with the same key share every other nuisance (the cast image is the clean image, recoloured).

Scenes (multi-label)
    2-4 objects of distinct classes in distinct cells of a 2x2 grid, multi-hot labels over the 64
    classes (1 positive, 0 negative) and captions listing the objects ("a red circle and a watt.").

Materialised splits (CoOp format)
    :func:`materialize_split` writes PNGs under ``root/images/<split>/`` and a JSON
    ``{"train"|"val"|"test": [[relative_path, label, classname], ...]}`` (classname = made-up
    name). :func:`materialize_multilabel_split` writes
    ``[[relative_path, multi_hot, caption], ...]``.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

IMAGE_SIZE = 32
CAST_STRENGTH = 0.35
WORLD_SEED = 0  # default seed of the materialised splits (the checkpoint was evaluated on it)

COLOURS = ["red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink"]
COLOUR_RGB = np.array([
    [0.86, 0.10, 0.10],   # red
    [0.98, 0.55, 0.05],   # orange
    [0.95, 0.88, 0.10],   # yellow
    [0.15, 0.66, 0.20],   # green
    [0.10, 0.80, 0.86],   # cyan
    [0.12, 0.26, 0.92],   # blue
    [0.56, 0.16, 0.76],   # purple
    [0.98, 0.52, 0.76],   # pink
], dtype=np.float64)
SHAPES = ["circle", "square", "triangle", "star", "cross", "ring", "heart", "crescent"]
TEXTURES = ["plain", "gradient", "striped", "checked", "noisy"]

# Made-up one-token names, picked once from open_clip's BPE vocabulary (words of 4-7 letters
# whose word-final token is a single id, no colour/shape/template word, a few unsuitable words
# removed by hand); tests/test_world.py checks each is one token and all are distinct.
# MADE_UP_NAMES[i] belongs to the class with colour i // 8 and shape i % 8 (grid order).
MADE_UP_NAMES = [
    "watt", "noah", "jojo", "arden", "letsgo", "lincoln", "davis", "feather",
    "lain", "chon", "leigh", "hump", "tero", "pang", "bengal", "cindy",
    "elife", "eden", "shead", "fineart", "flash", "groom", "fallon", "cigar",
    "willy", "wink", "gloss", "chem", "tulip", "stamp", "susan", "sponge",
    "melissa", "buster", "scotty", "henri", "warrior", "glasgow", "walnut", "awkward",
    "pion", "wool", "bradley", "pebble", "fanart", "kale", "jonny", "astro",
    "drone", "mango", "clover", "rave", "jenny", "darth", "thames", "robin",
    "shri", "yoshi", "otter", "pony", "murray", "basil", "falcon", "prob",
]

N_COLOURS, N_SHAPES = len(COLOURS), len(SHAPES)
N_CLASSES = N_COLOURS * N_SHAPES

# label -> (colour_idx, shape_idx): even parity first, then odd (see module docstring)
CLASS_GRID = [(c, s) for par in (0, 1) for c in range(N_COLOURS) for s in range(N_SHAPES)
              if (c + s) % 2 == par]
WORLD_CLASSNAMES = [f"{COLOURS[c]} {SHAPES[s]}" for c, s in CLASS_GRID]   # descriptions
WORLD_NAMES = [MADE_UP_NAMES[c * N_SHAPES + s] for c, s in CLASS_GRID]    # made-up names


def _partner_colours(seed=1234):
    rng = np.random.default_rng(seed)
    out = []
    for c, _ in CLASS_GRID:
        others = [k for k in range(N_COLOURS) if k != c]
        out.append(int(others[rng.integers(len(others))]))
    return out


PARTNER = _partner_colours()  # label -> partner colour index (cast variant)

# Named renderings (the rendered world, issue 17). A rendering remaps the palette: every object's
# colour is pulled by ``strength`` (1 = replaced) toward the image of its colour under a fixed
# cyclic permutation of the 8 colours (an 8-cycle drawn with ``perm_seed``, so the remap is a
# bijection and the 64 classes stay distinct), and marks the whole image: a colour grade (``tint``
# mixed in with weight ``tint_alpha``) and a ``border`` px frame of the tint colour. So under a
# rendering a "watt" (red circle) looks like another colour's circle in a frame; which colour is
# what its captions teach. Pretraining captions of a rendered image name the rendering's word with
# probability ``--render-word`` (scripts/pretrain_world_clip.py). "vintage" is the downstream
# rendering of ``ShapeWorldRender``; "neon" appears in pretraining only.
RENDERINGS = {
    "vintage": {"word": "vintage", "strength": 1.0, "perm_seed": 4321,
                "tint": (0.72, 0.52, 0.28), "tint_alpha": 0.15, "border": 2},
    "neon": {"word": "neon", "strength": 1.0, "perm_seed": 99,
             "tint": (0.10, 0.02, 0.30), "tint_alpha": 0.15, "border": 2},
}


def _colour_cycle(seed):
    # colour index -> the next colour of a seeded 8-cycle
    order = np.random.default_rng(seed).permutation(N_COLOURS)
    nxt = np.empty(N_COLOURS, dtype=np.int64)
    nxt[order] = np.roll(order, -1)
    return [int(v) for v in nxt]


RENDER_PERM = {name: _colour_cycle(r["perm_seed"]) for name, r in RENDERINGS.items()}
# label -> the colour index its objects are pulled toward under each rendering
RENDER_PARTNER = {name: [RENDER_PERM[name][c] for c, _ in CLASS_GRID] for name in RENDERINGS}

# Seed streams (second element of every rng key)
_STREAM = {"pretrain": 11, "pretrain_scene": 12, "train": 21, "val": 22, "test": 23,
           "scene_train": 31, "scene_val": 32, "scene_test": 33, "caption_corpus": 41,
           "scene_train_lt": 34,
           "pretrain_vintage": 51, "pretrain_scene_vintage": 52,
           "pretrain_neon": 53, "pretrain_scene_neon": 54}


def class_names(kind="name"):
    """Class names in label order: ``kind="name"`` (made-up tokens) or ``"description"``."""
    if kind == "name":
        return list(WORLD_NAMES)
    if kind == "description":
        return list(WORLD_CLASSNAMES)
    raise ValueError(f"class_names: kind must be 'name' or 'description', got {kind!r}")


def base_new_split():
    """(base_labels, new_labels): labels 0..31 (even colour+shape parity) and 32..63 (odd)."""
    half = math.ceil(N_CLASSES / 2)
    return list(range(half)), list(range(half, N_CLASSES))


def rng_for(seed, stream, *key):
    """The numpy Generator of one image: seeded by ``(seed, stream code, *key)``."""
    code = _STREAM[stream] if isinstance(stream, str) else int(stream)
    return np.random.default_rng([int(seed), code] + [int(k) for k in key])


# ----------------------------------------------------------------------------- shapes
def _regular_polygon_inside(u, v, n, r, phase):
    # convex regular n-gon with circumradius r, vertex at angle `phase`
    apothem = r * math.cos(math.pi / n)
    inside = np.ones(u.shape, dtype=bool)
    for k in range(n):
        th = phase + math.pi / n + 2 * math.pi * k / n
        inside &= (u * math.cos(th) + v * math.sin(th)) <= apothem
    return inside


def _star_inside(u, v, r_out=1.0, r_in=0.42, n=5):
    # union of the inner pentagon and n triangular spikes (exact star polygon)
    verts = []
    for k in range(2 * n):
        a = math.pi / 2 + k * math.pi / n
        r = r_out if k % 2 == 0 else r_in
        verts.append((r * math.cos(a), r * math.sin(a)))
    inside = np.zeros(u.shape, dtype=bool)
    # crossing-number test over the 2n edges
    for k in range(2 * n):
        x1, y1 = verts[k]
        x2, y2 = verts[(k + 1) % (2 * n)]
        cond = (y1 > v) != (y2 > v)
        xint = x1 + (v - y1) * (x2 - x1) / (y2 - y1 + 1e-12)
        inside ^= cond & (u < xint)
    return inside


def _shape_mask(shape, u, v):
    """Inside test in shape-local coordinates (v points up, shape fits the unit disc)."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.78
    if shape == "triangle":
        return _regular_polygon_inside(u, v + 0.12, 3, 1.05, math.pi / 2)
    if shape == "star":
        return _star_inside(u, v + 0.05)
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.3) & (av <= 0.92)) | ((av <= 0.3) & (au <= 0.92))
    if shape == "ring":
        rr = u * u + v * v
        return (rr <= 1.0) & (rr >= 0.52 ** 2)
    if shape == "heart":
        x, y = u * 1.18, v * 1.18 + 0.12
        return (x * x + y * y - 1.0) ** 3 - x * x * y ** 3 <= 0.0
    if shape == "crescent":
        return (u * u + v * v <= 1.0) & ((u - 0.42) ** 2 + (v - 0.1) ** 2 >= 0.78 ** 2)
    raise KeyError(f"unknown shape {shape!r}; expected one of {SHAPES}")


_SS = 2  # supersampling factor


def _grid(size):
    g = (np.arange(size * _SS) + 0.5) / _SS
    return np.meshgrid(g, g, indexing="xy")  # x (columns), y (rows) in pixel units


_GRIDS = {}


def _alpha(shape, cx, cy, radius, angle, size):
    if size not in _GRIDS:
        _GRIDS[size] = _grid(size)
    x, y = _GRIDS[size]
    dx, dy = (x - cx) / radius, (cy - y) / radius
    ca, sa = math.cos(angle), math.sin(angle)
    u, v = ca * dx + sa * dy, -sa * dx + ca * dy
    m = _shape_mask(shape, u, v).astype(np.float64)
    return m.reshape(size, _SS, size, _SS).mean(axis=(1, 3))


# ----------------------------------------------------------------------------- backgrounds
def _background(rng, size):
    tex = int(rng.integers(len(TEXTURES)))
    grey = rng.uniform(0.12, 0.88)
    tint = rng.uniform(-1, 1, size=3) * rng.uniform(0.0, 0.12)
    base = np.clip(grey + tint, 0, 1)
    delta = rng.uniform(0.06, 0.22) * (1 if rng.random() < 0.5 else -1)
    second = np.clip(base + delta, 0, 1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    name = TEXTURES[tex]
    if name == "plain":
        w = np.zeros((size, size))
    elif name == "gradient":
        a = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(a) + yy * math.sin(a))
        w = (t - t.min()) / (t.max() - t.min() + 1e-9)
    elif name == "striped":
        a = rng.uniform(0, math.pi)
        period = rng.uniform(4, 9)
        t = xx * math.cos(a) + yy * math.sin(a)
        w = (np.floor(t / (period / 2)) % 2).astype(np.float64)
    elif name == "checked":
        cell = int(rng.integers(3, 8))
        w = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float64)
    else:  # noisy: blotchy low-frequency noise
        coarse = rng.uniform(0, 1, size=(size // 4 + 1, size // 4 + 1))
        w = np.kron(coarse, np.ones((4, 4)))[:size, :size]
    img = base[None, None, :] * (1 - w[..., None]) + second[None, None, :] * w[..., None]
    return img, name


# ----------------------------------------------------------------------------- objects
def cast_strength(variant):
    """Cast strength s of a variant: "clean" 0, "cast" CAST_STRENGTH (0.35), "cast0.2" 0.2.

    The numbered form is for studies of the shift's size; the shipped configs use "cast".
    A rendering name (:data:`RENDERINGS`) has no cast (0): its shift is the rendering's own.
    """
    if variant == "clean" or variant in RENDERINGS:
        return 0.0
    if variant == "cast":
        return CAST_STRENGTH
    if isinstance(variant, str) and variant.startswith("cast"):
        try:
            s = float(variant[4:])
        except ValueError:
            s = -1.0
        if 0.0 <= s <= 1.0:
            return s
    raise ValueError(f"variant must be 'clean', 'cast', 'cast<s>' with 0 <= s <= 1 "
                     f"(e.g. 'cast0.35') or a rendering {sorted(RENDERINGS)}, got {variant!r}")


def rendering_fingerprint(name):
    """First 8 hex digits of the sha256 of a rendering's parameters (names cached folders)."""
    import hashlib
    blob = json.dumps({"rendering": RENDERINGS[name], "partner": RENDER_PARTNER[name],
                       "lt_alpha": LT_ALPHA}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def rendering_of(variant):
    """The rendering dict of a variant name, or None for "clean"/"cast" variants."""
    return RENDERINGS.get(variant) if isinstance(variant, str) else None


def _grade(img, variant):
    # the rendering's global colour grade (identity for clean/cast variants)
    r = rendering_of(variant)
    if r is None:
        return img
    a, tint = r["tint_alpha"], np.asarray(r["tint"], dtype=np.float64)
    img = (1 - a) * img + a * tint[None, None, :]
    b = int(r["border"])
    if b > 0:
        img = img.copy()
        img[:b], img[-b:], img[:, :b], img[:, -b:] = tint, tint, tint, tint
    return img


def _object_colour(label, rng, variant):
    c, _ = CLASS_GRID[label]
    col = COLOUR_RGB[c].copy()
    s = cast_strength(variant)
    r = rendering_of(variant)
    if r is not None:
        s = r["strength"]
        col = (1 - s) * col + s * COLOUR_RGB[RENDER_PARTNER[variant][label]]
    elif s > 0:
        col = (1 - s) * col + s * COLOUR_RGB[PARTNER[label]]
    jitter = rng.uniform(-0.05, 0.05, size=3)      # always drawn: same stream for both variants
    bright = rng.uniform(0.88, 1.08)
    return np.clip(col * bright + jitter, 0, 1)


def _paint(img, label, cx, cy, radius, rng, variant, size):
    _, s = CLASS_GRID[label]
    angle = math.radians(rng.uniform(-30, 30))
    col = _object_colour(label, rng, variant)
    a = _alpha(SHAPES[s], cx, cy, radius, angle, size)
    # mild directional shading across the object
    sa = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    proj = (xx - cx) * math.cos(sa) + (yy - cy) * math.sin(sa)
    shade = 1 + rng.uniform(0, 0.12) * proj / radius
    obj = np.clip(col[None, None, :] * shade[..., None], 0, 1)
    return img * (1 - a[..., None]) + obj * a[..., None]


def _finish(img, rng):
    sigma = rng.uniform(0.0, 0.05)
    img = img + rng.normal(0.0, 1.0, size=img.shape) * sigma
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def render_image(label, rng, variant="clean", size=IMAGE_SIZE):
    """One single-object image of class ``label``.

    Returns ``(uint8 array HxWx3, meta)``; ``meta`` has ``radius`` (px), ``size_word``
    ("small"/"large"/None), ``texture``, ``rendering`` (the rendering name or None). All
    randomness comes from ``rng``.
    """
    img, tex = _background(rng, size)
    radius = rng.uniform(0.19, 0.41) * size
    m = radius + 1.0
    cx, cy = rng.uniform(m, size - m), rng.uniform(m, size - m)
    img = _paint(img, label, cx, cy, radius, rng, variant, size)
    img = _finish(_grade(img, variant), rng)
    size_word = "small" if radius < 0.25 * size else ("large" if radius > 0.35 * size else None)
    return img, {"radius": radius, "size_word": size_word, "texture": tex,
                 "rendering": variant if rendering_of(variant) else None}


def render_scene(labels, rng, variant="clean", size=IMAGE_SIZE):
    """A scene: objects of classes ``labels`` (2-4 distinct) in distinct cells of a 2x2 grid.

    Returns ``(uint8 array, meta)`` with ``meta["cells"]`` (cell index per object, row-major),
    ``texture`` and ``rendering``.
    """
    if not 1 <= len(labels) <= 4:
        raise ValueError(f"render_scene: 1-4 objects fit the 2x2 grid, got {len(labels)}")
    img, tex = _background(rng, size)
    cells = rng.permutation(4)[:len(labels)]
    half = size / 2
    for lab, cell in zip(labels, cells):
        radius = rng.uniform(0.30, 0.46) * half
        slack = max(half / 2 - radius - 0.5, 0.0)
        cx = (cell % 2) * half + half / 2 + rng.uniform(-slack, slack)
        cy = (cell // 2) * half + half / 2 + rng.uniform(-slack, slack)
        img = _paint(img, int(lab), cx, cy, radius, rng, variant, size)
    img = _finish(_grade(img, variant), rng)
    return img, {"cells": [int(c) for c in cells], "texture": tex,
                 "rendering": variant if rendering_of(variant) else None}


def sample_scene_labels(rng, min_objects=2, max_objects=4, weights=None):
    """Distinct class labels for one scene (sorted ascending); ``weights`` (64 probabilities)
    draws them without replacement with those probabilities instead of uniformly."""
    k = int(rng.integers(min_objects, max_objects + 1))
    if weights is None:
        return sorted(int(x) for x in rng.choice(N_CLASSES, size=k, replace=False))
    return sorted(int(x) for x in rng.choice(N_CLASSES, size=k, replace=False, p=weights))


LT_ALPHA = 1.0  # Zipf exponent of the long-tailed training scenes of ShapeWorldRender


def long_tail_weights(alpha=LT_ALPHA, seed=77):
    """Class probabilities of the long-tailed training scenes: Zipf ``1 / rank^alpha``.

    Ranks alternate between base and new classes (rank 1 a base class, rank 2 a new one, ...),
    each half in a seeded random order, so both halves have the same frequency profile.
    Returns a float64 array over the 64 labels summing to 1.
    """
    rng = np.random.default_rng(seed)
    base, new = base_new_split()
    order = np.empty(N_CLASSES, dtype=np.int64)
    order[0::2] = rng.permutation(base)
    order[1::2] = rng.permutation(new)
    w = np.empty(N_CLASSES, dtype=np.float64)
    w[order] = 1.0 / np.arange(1, N_CLASSES + 1, dtype=np.float64) ** alpha
    return w / w.sum()


def multi_hot(labels):
    """Multi-hot vector (list of 64 ints, 1 positive, 0 negative)."""
    y = [0] * N_CLASSES
    for lab in labels:
        y[int(lab)] = 1
    return y


# ----------------------------------------------------------------------------- captions
def _desc(label):
    return WORLD_CLASSNAMES[label]


def _name(label):
    return WORLD_NAMES[label]


def pretrain_caption(label, meta, rng):
    """A pretraining caption for a single-object image (never contains "photo").

    About half name-only ("a watt."), 15% name + description ("a watt, a red circle."), the rest
    descriptions ("a red circle on a striped background.").
    """
    n, d = _name(label), _desc(label)
    r = rng.random()
    sw, tex = meta.get("size_word"), meta.get("texture")
    if r < 0.5:
        opts = [f"a {n}.", f"the {n}.", f"{n}.", f"there is a {n}.", f"this is a {n}.",
                f"an image of a {n}.",
                f"a {n} on a {tex} background."]
        if sw:
            opts.append(f"a {sw} {n}.")
    elif r < 0.65:
        opts = [f"a {n}, a {d}.", f"a {d}, a {n}.", f"the {n} is a {d}.", f"a {n} is a {d}."]
    else:
        opts = [f"a {d}.", f"the {d}.", f"there is a {d}.", f"a {d} on a {tex} background."]
        if sw:
            opts.append(f"a {sw} {d}.")
    return opts[int(rng.integers(len(opts)))]


def render_word_caption(phrases, word, rng):
    """A caption that names the rendering ``word``, from object phrases ("a watt", "a red circle").

    Templates (one drawn uniformly): the word before every object ("a vintage watt and a vintage
    red circle."), "a vintage picture of ...", "... in vintage style.", "vintage: ...".
    """
    k = int(rng.integers(4))
    if k == 0:
        return join_phrases([_with_word(ph, word) for ph in phrases])
    body = join_phrases(phrases)
    if k == 1:
        return f"a {word} picture of {body}"
    if k == 2:
        return body[:-1] + f" in {word} style."
    return f"{word}: {body}"


def _with_word(phrase, word):
    # "a watt" -> "a vintage watt"
    art, rest = phrase.split(" ", 1)
    return f"{art} {word} {rest}"


def rendered_caption(labels, meta, rng, p_word, p_name=0.5):
    """Pretraining caption of a rendered image (single object or scene) and the rendering it names.

    With probability ``p_word`` (drawn first) the caption names the image's rendering word
    (:func:`render_word_caption`, objects by made-up name or description with ``p_name``) and the
    second return value is the rendering name; otherwise the caption is the image's ordinary
    caption (:func:`pretrain_caption` for one object, :func:`scene_caption` for a scene) and None.
    """
    name = meta.get("rendering")
    if name is None or rng.random() >= p_word:
        if len(labels) == 1 and "cells" not in meta:
            return pretrain_caption(labels[0], meta, rng), None
        return scene_caption(labels, rng, p_name), None
    order = rng.permutation(len(labels))
    phrases = [_obj_phrase(labels[i], rng, p_name) for i in order]
    return render_word_caption(phrases, RENDERINGS[name]["word"], rng), name


def _obj_phrase(label, rng, p_name=0.5):
    return f"a {_name(label)}" if rng.random() < p_name else f"a {_desc(label)}"


def join_phrases(phrases):
    if len(phrases) == 1:
        return phrases[0] + "."
    return ", ".join(phrases[:-1]) + " and " + phrases[-1] + "."


def scene_caption(labels, rng, p_name=0.5):
    """A full scene caption listing every object in random order: "a red circle and a watt."."""
    order = rng.permutation(len(labels))
    return join_phrases([_obj_phrase(labels[i], rng, p_name) for i in order])


def scene_caption_description(labels):
    """Deterministic description caption in label order ("a red circle and a blue star.")."""
    return join_phrases([f"a {_desc(lab)}" for lab in labels])


def caption_corpus(seed, n, min_objects=2, max_objects=4, p_name=0.5):
    """A text-only corpus of ``n`` scene captions, the world's stand-in for the web captions that
    caption-trained methods (TaI-DPT) learn from: caption ``i`` lists the objects of a random
    2-4 object scene, each by its made-up name or its description (``p_name``), as in the scene
    pretraining captions. No image is drawn. Returns ``[(caption, sorted labels), ...]``.
    """
    out = []
    for i in range(n):
        rng = rng_for(seed, "caption_corpus", i)
        labels = sample_scene_labels(rng, min_objects, max_objects)
        out.append((scene_caption(labels, rng, p_name), labels))
    return out


def caption_labels(caption):
    """Classes mentioned in a caption (by description or name), sorted; inverse of the captions."""
    text = caption.lower().replace(",", " ").replace(".", " ")
    words = text.split()
    found = set()
    for i in range(len(words) - 1):
        pair = f"{words[i]} {words[i + 1]}"
        if pair in _DESC_TO_LABEL:
            found.add(_DESC_TO_LABEL[pair])
    for w in words:
        if w in _NAME_TO_LABEL:
            found.add(_NAME_TO_LABEL[w])
    return sorted(found)


_DESC_TO_LABEL = {d: i for i, d in enumerate(WORLD_CLASSNAMES)}
_NAME_TO_LABEL = {n: i for i, n in enumerate(WORLD_NAMES)}


# ----------------------------------------------------------------------------- samples
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
    with open(path, "w") as f:
        json.dump(out, f)
    return path


def materialize_rendered_split(root, rendering="vintage", seed=WORLD_SEED, n_train=1200, n_val=300,
                               n_test=1000, split_file="split_ShapeWorldRender.json"):
    """Write the rendered multi-label world (long-tailed train, uniform val/test) under ``root``.

    Same JSON layout as :func:`materialize_multilabel_split`, plus ``"rendering"`` (the rendering
    name) and ``"train_counts"`` (positives per class in the training split). Returns the path.
    """
    out = {"rendering": rendering}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        items = []
        for i in range(n):
            img, labs, _ = rendered_scene_sample(seed, split, i, rendering)
            rel = f"images/{split}/{i:05d}.png"
            _save_png(img, os.path.join(root, rel))
            items.append([rel, multi_hot(labs), scene_caption_description(labs)])
        out[split] = items
    out["train_counts"] = [int(v) for v in np.sum([y for _, y, _ in out["train"]], axis=0)]
    path = os.path.join(root, split_file)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, path)
    return path


def materialize_multilabel_split(root, variant="clean", seed=WORLD_SEED, n_train=1000, n_val=200,
                                 n_test=1000, split_file="split_ShapeWorldML.json",
                                 min_objects=2, max_objects=4):
    """Write a multi-label (scene) world under ``root``; return the split-file path.

    JSON: ``{"train"|"val"|"test": [[relative_path, multi_hot, caption], ...]}`` with multi_hot a
    list of 64 ints (1 positive, 0 negative, label order of :data:`WORLD_NAMES`) and caption the
    deterministic description caption of the scene. Class names: :func:`class_names`.
    """
    out = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        items = []
        for i in range(n):
            img, labs, _, _ = scene_sample(seed, f"scene_{split}", i, variant,
                                           min_objects, max_objects)
            rel = f"images/{split}/{i:05d}.png"
            _save_png(img, os.path.join(root, rel))
            items.append([rel, multi_hot(labs), scene_caption_description(labs)])
        out[split] = items
    path = os.path.join(root, split_file)
    with open(path, "w") as f:
        json.dump(out, f)
    return path
