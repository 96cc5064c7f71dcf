"""Caption -> multi-hot labels by matching class names and synonyms (TaI-DPT's text training).

Generic (knows no benchmark): dataset modules register their synonym files (:func:`register_synonyms`,
``datasets/captions.py``); datasets and trainers (which must not import ``datasets``) look them up
by dataset name (:func:`synonyms_for`).

Matching rule (:class:`CaptionMatcher`): the caption is lower-cased and split into words at any
character that is not a letter or a digit; class ``c`` is positive when a phrase of ``c`` occurs
as a run of whole words. The phrases of a class are its name (``_`` read as a space), the
name's regular plural/singular forms (last word: ``+s``, ``+es``, ``y -> ies``, and the singular
of a plural name such as NUS-WIDE's ``birds``), and every synonym listed for it, each with the
same inflections. A phrase may name several classes (e.g. "table" for "dining table"); all of them
become positive. Labels are 1 (named) or 0 (not named); a caption never yields -1.
"""
import json
import os
import re

import numpy as np

from ...calibration.registry import Registry

__all__ = ["CaptionMatcher", "caption_multihot", "load_synonyms", "phrase_variants", "register_synonyms",
           "synonyms_for", "SYNONYM_FILES"]

_WORD = re.compile(r"[a-z0-9]+")
SYNONYM_FILES = Registry("SYNONYM_FILE")  # dataset registry name -> synonym file path


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
        norm_syn = {" ".join(_words(k)): v for k, v in (synonyms or {}).items() if not str(k).startswith("_")}
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


def register_synonyms(dataset_name, path):
    """Register the synonym file of a dataset (registry name, e.g. ``COCO2014``)."""
    SYNONYM_FILES.register(path, force=True, name=str(dataset_name))


def synonyms_for(dataset_name, path=""):
    """Synonyms of a dataset: ``path`` when given, else its registered file, else ``{}``."""
    name = str(dataset_name)
    return load_synonyms(path or (SYNONYM_FILES.get(name) if name in SYNONYM_FILES else ""))
