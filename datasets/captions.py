"""Caption -> multi-hot labels by matching class names and synonyms (captions for text-only training,
e.g. TaI-DPT's), and the datasets' side of it.

Matching rule (:class:`CaptionMatcher`): the caption is lower-cased and split into words at any
character that is not a letter or a digit; class ``c`` is positive when a phrase of ``c`` occurs
as a run of whole words. The phrases of a class are its name (``_`` read as a space), the
name's regular plural/singular forms (last word: ``+s``, ``+es``, ``y -> ies``, and the singular
of a plural name such as NUS-WIDE's ``birds``), and every synonym listed for it, each with the
same inflections. A phrase may name several classes (e.g. "table" for "dining table"); all of them
become positive. Labels are 1 (named) or 0 (not named); a caption never yields -1.

A dataset with captions mixes in :class:`CaptionLabels` and names its synonym file (``synonyms_file``,
a file of ``datasets/data/``, written for this project, or a path); trainers (which never import
``datasets``) label captions through the dataset object, ``dataset.caption_matcher(classnames)``.
"""
import json
import os
import re

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _words(text):
    return _WORD.findall(str(text).lower().replace("_", " "))


def _inflect(word):
    """The word plus its regular singular (when it looks plural) and plural forms."""
    forms = {word}
    if len(word) < 3:
        return forms
    if word.endswith("ies"):
        forms.add(word[:-3] + "y")
    elif word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        forms.add(word[:-2])
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        forms.add(word[:-1])
    if word.endswith("y") and word[-2] not in "aeiou":
        forms.add(word[:-1] + "ies")
    elif word.endswith(("s", "x", "z", "ch", "sh")):
        forms.add(word + "es")
    else:
        forms.add(word + "s")
    return forms


def phrase_variants(phrase):
    """Word tuples that count as ``phrase``: itself and its last word's plural/singular forms."""
    words = _words(phrase)
    return {tuple(words[:-1]) + (w,) for w in _inflect(words[-1])} if words else set()


class CaptionMatcher:
    """Labels captions with ``classnames`` by the module's rule; ``synonyms``: class name -> phrases (names
    not in ``classnames`` are ignored). ``matcher(caption)``: int8 ``(C,)``; ``.label(captions)``: ``(N, C)``."""

    def __init__(self, classnames, synonyms=None):
        self.classnames = list(classnames)
        self.synonyms = dict(synonyms or {})
        norm_syn = {" ".join(_words(k)): v for k, v in self.synonyms.items() if not str(k).startswith("_")}
        self.index = {}
        for i, name in enumerate(self.classnames):
            for p in [name] + list(norm_syn.get(" ".join(_words(name)), [])):
                for v in phrase_variants(p):
                    self.index.setdefault(v, set()).add(i)
        self.max_len = max((len(k) for k in self.index), default=1)

    def positives(self, caption):
        """Sorted class indices a caption names."""
        words = _words(caption)
        found = set()
        for n in range(1, self.max_len + 1):
            for j in range(len(words) - n + 1):
                found.update(self.index.get(tuple(words[j:j + n]), ()))
        return sorted(found)

    def __call__(self, caption):
        return self.label([caption])[0]

    def label(self, captions):
        out = np.zeros((len(captions), len(self.classnames)), dtype=np.int8)
        for r, cap in enumerate(captions):
            out[r, self.positives(cap)] = 1
        return out


def caption_multihot(caption, classnames, synonyms=None):
    """Multi-hot (int8, 1/0) of the classes one caption names (:class:`CaptionMatcher`)."""
    return CaptionMatcher(classnames, synonyms)(caption)


def load_synonyms(path):
    """Synonym dict from a JSON file ``{"class name": ["phrase", ...]}`` (``_``-keys skipped)."""
    if not path:
        return {}
    if not os.path.isfile(path):
        raise FileNotFoundError(f"synonym file not found: {path} (a JSON object: class name -> list of phrases)")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"synonym file {path}: expected a JSON object (class name -> list of phrases)")
    out = {}
    for k, v in data.items():
        if str(k).startswith("_"):
            continue
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ValueError(f"synonym file {path}: entry {k!r} must be a list of strings")
        out[str(k)] = list(v)
    return out


def synonyms_for(dataset_name, path=""):
    """Synonyms of a registered dataset: ``path`` when given, else its class's ``synonyms_file``."""
    from ..engine.data import DATASET_REGISTRY

    cls = DATASET_REGISTRY.get(dataset_name) if dataset_name in DATASET_REGISTRY else None
    return load_synonyms(path or _data_file(getattr(cls, "synonyms_file", "")))


def _data_file(name):
    return os.path.join(DATA_DIR, name) if name else ""


class CaptionLabels:
    """Mixed into a dataset with ``captions(limit)``: the matcher of its ``synonyms_file`` (or of the
    file given), and the keys of text-only training: ``DATASET.TRAIN_SOURCE`` (``images`` or
    ``captions``: what a caption-trained method such as TaI-DPT trains on) and ``DATASET.NUM_CAPTIONS``
    (0: the dataset's own captions; N > 0: a corpus of N, the ``limit`` of ``captions``)."""

    config_keys = {"TRAIN_SOURCE": "images", "NUM_CAPTIONS": 0}
    synonyms_file = ""

    def caption_matcher(self, classnames, synonyms_file=""):
        return CaptionMatcher(classnames, load_synonyms(synonyms_file or _data_file(self.synonyms_file)))
