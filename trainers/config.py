"""Trainer-specific config keys (``TRAINER.<NAME>.*``), named as in the CoOp/CoCoOp/MaPLe/KgCoOp
repositories so their yamls load unchanged; a key shared by several trainers has one type.
``PREC``: ``fp16`` | ``fp32`` | ``bf16`` | ``amp`` (the CPU always runs fp32).

``LOSS``: ``ce`` (softmax cross-entropy, single-label) or ``bce`` (multi-label: a sigmoid and
binary cross-entropy on multi-hot targets; entries marked -1 carry no loss). TaI-DPT
(``TRAINER.TAIDPT.LOSS``) takes ``ranking`` or ``bce`` instead.

Multi-label probability map (every CLIP trainer): ``p = sigmoid(BCE_SCALE * cos + BCE_BIAS)``,
``BCE_SCALE`` 0 (default) meaning the backbone's logit scale; or ``PROB_MAP`` (e.g. ``vintage``),
the map ``<PROB_MAP>_probability_map`` recorded in the backbone checkpoint's manifest, with
BCE_SCALE/BCE_BIAS left 0. See ``ClipPromptTrainer.configured_probability_map`` (``trainers/base.py``).
"""
from yacs.config import CfgNode as CN

PREC_CHOICES = ("fp16", "fp32", "bf16", "amp")
LOSS_CHOICES = ("ce", "bce")
TAIDPT_LOSS_CHOICES = ("ranking", "bce")

_ML = dict(BCE_SCALE=0.0, BCE_BIAS=0.0, PROB_MAP="")

# What each key means: the trainer's module docstring (trainers/<method>.py). TRAINER.COOP.W is
# KgCoOp's weight, kept for configs that put it under TRAINER.COOP.
_COOP = dict(N_CTX=16, CSC=False, CTX_INIT="", PREC="fp16", CLASS_TOKEN_POSITION="end", W=8.0, LOSS="ce", **_ML)
_DEFAULTS = {
    "COOP": _COOP,
    "COCOOP": dict(N_CTX=16, CTX_INIT="", PREC="fp16", LOSS="ce", **_ML),
    "KGCOOP": dict(_COOP),
    "MAPLE": dict(N_CTX=2, CTX_INIT="a photo of a", PREC="fp16", PROMPT_DEPTH=9, LOSS="ce",
                  UPSTREAM_HALF_PROMPTS=False, **_ML),
    "ZSCLIP": dict(TEMPLATE="", ENSEMBLE=False, PREC="fp16", **_ML),
    "TAIDPT": dict(N_CTX=16, CSC=False, CTX_INIT="", PREC="fp16", CLASS_TOKEN_POSITION="end",
                   LOSS="ranking", RANK_MARGIN=1.0, LOGIT_SCALE=4.0, SPATIAL_T_TEXT=50.0,
                   SPATIAL_T_IMAGE=40.0, GL_MERGE=0.5, CAPTION_LABELS="match", SYNONYMS="",
                   PROB_FIT="config", UPSTREAM_EXACT=False, **_ML),
}


def add_trainer_node(node, **defaults):
    """Declare ``TRAINER.<node>`` and its defaults (a method outside the project calls this once,
    at import, before the config is built); keys given again overwrite earlier defaults."""
    _DEFAULTS.setdefault(node, {}).update(defaults)


def extend_cfg(cfg):
    """Add the ``TRAINER.<NAME>`` nodes above to ``cfg`` (existing keys are left as they are)."""
    for node, keys in _DEFAULTS.items():
        if node not in cfg.TRAINER:
            cfg.TRAINER[node] = CN()
        for k, v in keys.items():
            if k not in cfg.TRAINER[node]:
                cfg.TRAINER[node][k] = v
    return cfg
