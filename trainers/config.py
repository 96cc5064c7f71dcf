"""Trainer config keys, declared as data by the trainer classes (docs/design.md section 11), named as in
the CoOp/CoCoOp/MaPLe/KgCoOp repositories so their yamls load unchanged.

A trainer class declares ``cfg_node`` (its ``TRAINER.<NODE>``) and ``cfg_defaults`` (keys of that
node -> defaults; the node holds the class's own keys and those of its bases, the nearest class
winning). :func:`extend_cfg` adds those of every registered trainer to a config. A key shared by
several trainers has one type; what each key means: the module docstring of the trainer that
declares it.

``PREC``: ``fp16`` | ``fp32`` | ``bf16`` | ``amp`` (the CPU always runs fp32). ``LOSS``: ``ce``
(softmax cross-entropy, single-label) or ``bce`` (multi-label: a sigmoid and binary cross-entropy on
multi-hot targets; entries marked -1 carry no loss); a trainer may accept others (``loss_choices``).
The multi-label probability map keys: ``trainers/probmap.py``.
"""
from yacs.config import CfgNode as CN

PREC_CHOICES = ("fp16", "fp32", "bf16", "amp")
LOSS_CHOICES = ("ce", "bce")


def node_defaults(trainer_cls):
    """The keys and defaults of ``TRAINER.<cfg_node>`` of a trainer class (its own and its bases')."""
    out = {}
    for c in trainer_cls.__mro__:
        for k, v in vars(c).get("cfg_defaults", {}).items():
            out.setdefault(k, v)
    return out


def extend_cfg(cfg):
    """Add the keys every registered trainer declares to ``cfg`` (existing keys are left as they are)."""
    from ..engine.trainer import TRAINER_REGISTRY

    for _, cls in TRAINER_REGISTRY.items():
        node = getattr(cls, "cfg_node", "")
        if node:
            cfg.TRAINER.setdefault(node, CN())
            for k, v in node_defaults(cls).items():
                cfg.TRAINER[node].setdefault(k, v)
    return cfg
