"""The world's vocabulary: classes, names, palette, variants and renderings, seed streams and
label helpers (see :mod:`cpt.datasets.world` for the conventions)."""

from __future__ import annotations

import hashlib
import json
import math

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
    blob = json.dumps({"rendering": RENDERINGS[name], "partner": RENDER_PARTNER[name],
                       "lt_alpha": LT_ALPHA}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def rendering_of(variant):
    """The rendering dict of a variant name, or None for "clean"/"cast" variants."""
    return RENDERINGS.get(variant) if isinstance(variant, str) else None


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


