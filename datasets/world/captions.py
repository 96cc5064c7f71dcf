"""Captions: pretraining captions of single objects and scenes, captions naming a rendering, the
text-only caption corpus and the caption -> labels parser."""

from __future__ import annotations

from .spec import RENDERINGS, WORLD_CLASSNAMES, WORLD_NAMES, rng_for, sample_scene_labels


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

