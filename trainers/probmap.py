"""The multi-label probability map of a prompt learner: ``p = sigmoid(scale * cos + bias)``
(the contract of ``calibration/multilabel.py``).

Keys (``TRAINER.<NODE>``, every CLIP trainer): ``BCE_SCALE`` / ``BCE_BIAS``, ``BCE_SCALE`` 0 (default)
meaning the trainer's raw scale (CLIP's logit scale); or ``PROB_MAP`` (e.g. ``vintage``), the map
``<PROB_MAP>_probability_map`` recorded in the backbone checkpoint's manifest, with BCE_SCALE/BCE_BIAS
left 0. A method with another map (TaI-DPT's, fitted on the validation split) subclasses
:class:`ProbabilityMap` and names it in its trainer's ``probability_map_class``.
"""
from .clip import world as world_clip


class ProbabilityMap:
    keys = dict(BCE_SCALE=0.0, BCE_BIAS=0.0, PROB_MAP="")
    input_name = "cosine"  # what the map is applied to (results.json's formula)

    def __init__(self, trainer):
        self.trainer = trainer
        self._configured = None

    def configured(self):
        """``(scale, bias, source)`` from ``TRAINER.<NODE>`` (module docstring). Read once."""
        if self._configured is not None:
            return self._configured
        t = self.trainer
        node = f"TRAINER.{t.cfg_node}"
        name = str(t.tcfg.get("PROB_MAP", "") or "")
        scale, bias = float(t.tcfg.get("BCE_SCALE", 0.0)), float(t.tcfg.get("BCE_BIAS", 0.0))
        if name:
            if scale or bias:
                raise ValueError(f"{node}.PROB_MAP is {name!r} but BCE_SCALE/BCE_BIAS are {scale}/{bias}: "
                                 "set either the manifest's map or the numbers, not both (the other 0 / '')")
            ckpt = t.clip.source.get("file", "")
            scale, bias = world_clip.manifest_probability_map(ckpt, name)
            source = f"manifest ({node}.PROB_MAP {name!r}: {world_clip.manifest_path(ckpt)})"
        else:
            zero = f", scale 0 = the raw logit scale {t.raw_scale:g}" if scale <= 0 else ""
            scale = scale if scale > 0 else t.raw_scale
            source = f"config ({node}.BCE_SCALE/BCE_BIAS{zero})"
        self._configured = (scale, bias, source)
        return self._configured

    def scale_bias(self):
        """``(scale, bias)`` in use."""
        return self.configured()[:2]

    def source(self):
        return self.configured()[2]

    def info(self):
        scale, bias = self.scale_bias()
        return {"formula": f"p = sigmoid(scale * {self.input_name} + bias)", "scale": scale, "bias": bias,
                "source": self.source()}

    def results(self):
        """``results.json``'s ``probability_map`` (multi-label datasets)."""
        return {"probability_map": self.info()} if self.trainer.multilabel else {}

    def logits(self, raw):
        """Multi-label: raw logits (``raw_scale * cos``) -> ``scale * cos + bias``; single-label: unchanged."""
        t = self.trainer
        if not t.multilabel:
            return raw
        scale, bias = self.scale_bias()
        return raw * (scale / t.raw_scale) + bias
