"""The text-feature head of a prompt learner: its classes' zero-shot text features (the method's
hand-crafted template, computed once) and the learned ones (``class_text_features``), computed once
per evaluation together with the method's other per-evaluation constants (``prepare_evaluation``)."""
import contextlib

import torch


class TextHead:
    def __init__(self, trainer):
        self.trainer = trainer
        self.zs = None     # zero-shot text features (C, E)
        self.cache = None  # per-evaluation constants: "text" and the method's own

    def zero_shot(self):
        if self.zs is None:
            t = self.trainer
            self.zs = t.clip.zero_shot_text_features(t.classnames, t.template)
        return self.zs

    def cached(self, key, compute):
        """``cache[key]`` during an evaluation that computed it, else ``compute()``."""
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        return compute()

    def classes(self):
        """The class text features that score images: the evaluation's, else freshly computed."""
        return self.cached("text", self.trainer.class_text_features)

    @torch.no_grad()
    def fill(self):
        """Compute what does not depend on the image: the class text features and the method's own."""
        t = self.trainer
        self.cache = {}
        with t.clip.autocast():
            if t.image_independent_text:
                self.cache["text"] = t.class_text_features().float()
            t.prepare_evaluation(self.cache)

    @contextlib.contextmanager
    def evaluation(self):
        """The cache filled for the block, dropped after it."""
        self.fill()
        try:
            yield
        finally:
            self.cache = None
