"""Trainer-specific config keys (``TRAINER.<NAME>.*``), named as in the CoOp/CoCoOp/MaPLe/KgCoOp
repositories so their yamls load unchanged.

A key shared by several trainers has the same type in each (``N_CTX`` int, ``CTX_INIT`` str,
``PREC`` str, ``CSC`` bool, ``CLASS_TOKEN_POSITION`` str, ``W`` float, ``LOSS`` str,
``BCE_SCALE`` / ``BCE_BIAS`` float).
``PREC``: ``fp16`` | ``fp32`` | ``bf16`` | ``amp`` (the CPU always runs fp32).

``LOSS``: ``ce`` (softmax cross-entropy, single-label) or ``bce`` (multi-label: a sigmoid and
binary cross-entropy on multi-hot targets; entries marked -1 carry no loss). TaI-DPT
(``TRAINER.TAIDPT.LOSS``) takes ``ranking`` or ``bce`` instead.

Multi-label probability map (every CLIP trainer): ``p = sigmoid(BCE_SCALE * cos + BCE_BIAS)``,
``BCE_SCALE`` 0 (default) meaning the backbone's logit scale; see
``ClipPromptTrainer.calibration_logits`` (``trainers/base.py``).
"""
from yacs.config import CfgNode as CN

PREC_CHOICES = ("fp16", "fp32", "bf16", "amp")
LOSS_CHOICES = ("ce", "bce")
TAIDPT_LOSS_CHOICES = ("ranking", "bce")

_ML = dict(BCE_SCALE=0.0, BCE_BIAS=0.0)

_DEFAULTS = {
    # CoOp: N_CTX context tokens (CTX_INIT's token count when CTX_INIT is set), class-specific
    # context (CSC), class token at end/middle/front; W is KgCoOp's weight, kept here for configs
    # that put it under TRAINER.COOP.
    "COOP": dict(N_CTX=16, CSC=False, CTX_INIT="", PREC="fp16", CLASS_TOKEN_POSITION="end", W=8.0,
                 LOSS="ce", **_ML),
    # CoCoOp: context plus a meta-net bias per image.
    "COCOOP": dict(N_CTX=16, CTX_INIT="", PREC="fp16", LOSS="ce", **_ML),
    # KgCoOp: CoOp's keys; loss CE + W * (1 - mean cos(learned, hand-crafted text features)).
    "KGCOOP": dict(N_CTX=16, CSC=False, CTX_INIT="", PREC="fp16", CLASS_TOKEN_POSITION="end", W=8.0,
                   LOSS="ce", **_ML),
    # MaPLe: N_CTX learnable tokens (the first N_CTX of CTX_INIT), deep prompts up to PROMPT_DEPTH;
    # UPSTREAM_HALF_PROMPTS rounds the prompts to fp16 where upstream's clip/model.py does (even at fp32).
    "MAPLE": dict(N_CTX=2, CTX_INIT="a photo of a", PREC="fp16", PROMPT_DEPTH=9, LOSS="ce",
                  UPSTREAM_HALF_PROMPTS=False, **_ML),
    # ZeroshotCLIP: TEMPLATE overrides the dataset's template; ENSEMBLE averages templates.
    "ZSCLIP": dict(TEMPLATE="", ENSEMBLE=False, PREC="fp16", **_ML),
    # TaI-DPT (trainers/taidpt.py): two generic contexts (global, local) of N_CTX tokens, scores
    # LOGIT_SCALE * cosine, softmax pooling over caption tokens (SPATIAL_T_TEXT) / image patches
    # (SPATIAL_T_IMAGE), merged GL_MERGE * global + (1 - GL_MERGE) * local; ranking loss with
    # margin RANK_MARGIN (or bce); CAPTION_LABELS "match" (class names + synonym files) or
    # "dataset"; PROB_FIT "config" (BCE_SCALE/BCE_BIAS) or "val" (fitted on the val split);
    # UPSTREAM_EXACT: upstream's token mask (ids != 0) and RN attention pool without positions.
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
