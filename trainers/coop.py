"""CoOp (Zhou et al., IJCV 2022): a learnable context shared by all classes (or one per class).

Keys ``TRAINER.COOP``: ``N_CTX`` (ignored when ``CTX_INIT`` is set: the context is CTX_INIT's
tokens, as in CoOp), ``CTX_INIT``, ``CSC``, ``CLASS_TOKEN_POSITION``, ``PREC``. Loss: CE (plus the
configured calibration regularizers).
"""
import torch.nn.functional as F

from ..engine.trainer import TRAINER_REGISTRY
from .base import ClipPromptTrainer
from .clip import PromptLearner


def build_coop_learner(trainer, cls=PromptLearner, **extra):
    """A :class:`PromptLearner` from ``TRAINER.<node>`` (CoOp's key semantics)."""
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


@TRAINER_REGISTRY.register()
class CoOp(ClipPromptTrainer):
    cfg_node = "COOP"

    @property
    def supports_outliers(self):
        t = self.tcfg
        return not t.CSC and t.CLASS_TOKEN_POSITION == "end"

    def build_learner(self):
        return build_coop_learner(self)

    def outlier_text_features(self, words):
        x, ids = self.learner.prompts_for_names(self.clip, words)
        return F.normalize(self.clip.encode_text_embeddings(x, ids), dim=-1)
