"""Optimizers and LR schedulers with Dassl's config keys (``cfg.OPTIM``).

Schedules are per epoch. With a warmup of ``W`` epochs, epochs ``0..W-1`` use the warmup LR (constant
``WARMUP_CONS_LR``, or linear from ``WARMUP_MIN_LR`` to the base LR), then the main schedule starts;
with ``WARMUP_RECOUNT`` (default) it counts from 0 after the warmup, as in Dassl/CoOp. Cosine anneals
to 0 over ``MAX_EPOCH`` steps: ``lr_e = base * (1 + cos(pi * s / MAX_EPOCH)) / 2``. Implemented as a
``LambdaLR`` so it works on current torch.
"""
import math
import warnings

import torch
import torch.nn as nn

AVAI_OPTIMS = ["sgd", "adam", "adamw"]
AVAI_SCHEDS = ["single_step", "multi_step", "cosine"]


def build_optimizer(model, optim_cfg, param_groups=None):
    """``model``: an ``nn.Module``, an iterable of parameters, or ``None`` with ``param_groups``."""
    name = optim_cfg.NAME.lower()
    if name not in AVAI_OPTIMS:
        raise ValueError(f"OPTIM.NAME must be one of {AVAI_OPTIMS}, got {optim_cfg.NAME!r}")
    params = param_groups
    if params is None:
        source = model.parameters() if isinstance(model, nn.Module) else model
        params = [p for p in source if p.requires_grad]
    if not params:
        raise ValueError("build_optimizer: no parameter requires grad")
    lr, wd = optim_cfg.LR, optim_cfg.WEIGHT_DECAY
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=optim_cfg.MOMENTUM, weight_decay=wd,
                               dampening=optim_cfg.SGD_DAMPNING, nesterov=optim_cfg.SGD_NESTEROV)
    betas = (optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, betas=betas)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd, betas=betas)


def lr_at_epoch(epoch, base_lr, optim_cfg):
    """The LR used during ``epoch`` (0-based) for a group whose base LR is ``base_lr``."""
    warm = max(int(optim_cfg.WARMUP_EPOCH), 0)
    if epoch < warm:
        if optim_cfg.WARMUP_TYPE == "constant":
            return optim_cfg.WARMUP_CONS_LR
        if optim_cfg.WARMUP_TYPE == "linear":
            lo = optim_cfg.WARMUP_MIN_LR
            return lo + (base_lr - lo) * epoch / warm
        raise ValueError(f"OPTIM.WARMUP_TYPE must be constant or linear, got {optim_cfg.WARMUP_TYPE!r}")
    s = epoch - warm if optim_cfg.WARMUP_RECOUNT else epoch
    sched = optim_cfg.LR_SCHEDULER
    if sched == "cosine":
        t = max(int(optim_cfg.MAX_EPOCH), 1)
        return base_lr * (1 + math.cos(math.pi * s / t)) / 2
    if sched == "single_step":
        step = optim_cfg.STEPSIZE[0] if isinstance(optim_cfg.STEPSIZE, (list, tuple)) else optim_cfg.STEPSIZE
        if step <= 0:
            step = int(optim_cfg.MAX_EPOCH)
        return base_lr * optim_cfg.GAMMA ** (s // max(step, 1))
    if sched == "multi_step":
        return base_lr * optim_cfg.GAMMA ** sum(1 for m in optim_cfg.STEPSIZE if s >= m)
    raise ValueError(f"OPTIM.LR_SCHEDULER must be one of {AVAI_SCHEDS}, got {sched!r}")


def build_lr_scheduler(optimizer, optim_cfg):
    if optim_cfg.LR_SCHEDULER not in AVAI_SCHEDS:
        raise ValueError(f"OPTIM.LR_SCHEDULER must be one of {AVAI_SCHEDS}, got {optim_cfg.LR_SCHEDULER!r}")
    lambdas = [(lambda e, b=g["lr"]: lr_at_epoch(e, b, optim_cfg) / b if b > 0 else 0.0)
               for g in optimizer.param_groups]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
