"""The learnable module of a prompt learner: a context learner built from ``TRAINER.<NODE>`` (the key
semantics of CoOp's configs, shared by the methods with a generic context: ``N_CTX``, ``CTX_INIT``,
``CSC``, ``CLASS_TOKEN_POSITION``), its registration (``MODEL.INIT_WEIGHTS``, optimizer and
schedule) and its update under amp (a gradient scaler over fp32 master weights)."""
from ..engine.checkpoint import load_checkpoint, load_learnable_state
from ..engine.optim import build_lr_scheduler, build_optimizer
from ..engine.utils import count_num_param
from .clip import PromptLearner


def context_learner(trainer, cls=PromptLearner, **extra):
    """A :class:`PromptLearner` (or subclass ``cls``) from ``TRAINER.<node>``; ``N_CTX`` is ignored
    when ``CTX_INIT`` is set (the context is CTX_INIT's tokens)."""
    t = trainer.tcfg
    key = f"TRAINER.{trainer.cfg_node}"
    ctx_init = t.CTX_INIT
    if ctx_init and t.N_CTX != trainer.clip.count_tokens(ctx_init.replace("_", " ")):
        trainer.logger.info(f"{key}.CTX_INIT is set: the context has its token count; N_CTX={t.N_CTX} is ignored")
    learner = cls(trainer.clip, trainer.classnames, n_ctx=None if ctx_init else t.N_CTX, ctx_init=ctx_init,
                  csc=t.get("CSC", False), class_token_position=t.get("CLASS_TOKEN_POSITION", "end"),
                  cfg_key=key, **extra)
    trainer.logger.info(f'Initial context: "{learner.prefix_text}" ({learner.n_ctx} tokens'
                        f'{", class-specific" if learner.csc else ""}, class token {learner.class_token_position})')
    return learner


def register(t, learner):
    """``learner`` as trainer ``t``'s ``prompt_learner``: initial weights, and an optimizer when it learns."""
    cfg = t.cfg
    learner.to(t.device)
    t.model["prompt_learner"] = learner
    if cfg.MODEL.INIT_WEIGHTS:
        ckpt = load_checkpoint(cfg.MODEL.INIT_WEIGHTS)
        load_learnable_state(learner, ckpt.get("state_dict", ckpt), cfg.MODEL.INIT_WEIGHTS)
    n_learn = sum(p.numel() for p in learner.parameters() if p.requires_grad)
    t.logger.info(f"Learnable parameters: {n_learn:,} (CLIP: {count_num_param(t.clip):,}, frozen)")
    if n_learn:
        optim = build_optimizer(learner, cfg.OPTIM)
        t.register_model("prompt_learner", learner, optim, build_lr_scheduler(optim, cfg.OPTIM))


def scaled_update(t, loss):
    """Trainer ``t``'s backward pass and optimizer steps through its gradient scaler (amp)."""
    t.model_zero_grad()
    t.detect_anomaly(loss)
    t.scaler.scale(loss).backward()
    optims = [t._optims[n] for n in t.get_model_names() if t._optims[n] is not None]
    for opt in optims:
        t.scaler.unscale_(opt)
    t._sync_grads(None)
    for opt in optims:
        t.scaler.step(opt)
    t.scaler.update()
