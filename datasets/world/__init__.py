"""The offline world: a procedural image-caption generator of coloured shapes (docs/design.md §8).

Everything here is numpy + Pillow only (no engine/, no torch, no open_clip import), so the
pretraining script, the tests and the dataset module can all use it. Modules by job:
``spec`` (classes, names, palette, variants, renderings, seed streams), ``draw`` (images),
``captions`` and ``samples`` (keyed samples, pools, materialised splits); every public name is
importable from this package.

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


from .captions import (
    caption_corpus,
    caption_labels,
    join_phrases,
    pretrain_caption,
    render_word_caption,
    rendered_caption,
    scene_caption,
    scene_caption_description,
)
from .draw import render_image, render_scene
from .samples import (
    generate_class_balanced,
    generate_scene_pool,
    generate_single_pool,
    materialize_multilabel_split,
    materialize_rendered_split,
    materialize_split,
    rendered_scene_sample,
    scene_sample,
    single_sample,
)
from .spec import (
    CAST_STRENGTH,
    CLASS_GRID,
    COLOUR_RGB,
    COLOURS,
    IMAGE_SIZE,
    LT_ALPHA,
    MADE_UP_NAMES,
    N_CLASSES,
    N_COLOURS,
    N_SHAPES,
    PARTNER,
    RENDER_PARTNER,
    RENDER_PERM,
    RENDERINGS,
    SHAPES,
    TEXTURES,
    WORLD_CLASSNAMES,
    WORLD_NAMES,
    WORLD_SEED,
    base_new_split,
    cast_strength,
    class_names,
    long_tail_weights,
    multi_hot,
    rendering_fingerprint,
    rendering_of,
    rng_for,
    sample_scene_labels,
)
