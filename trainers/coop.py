"""CoOp (Zhou et al., IJCV 2022): a learnable context shared by all classes (or one per class).

Keys ``TRAINER.COOP``: ``N_CTX`` (ignored when ``CTX_INIT`` is set: the context is CTX_INIT's
tokens, as in CoOp), ``CTX_INIT``, ``CSC``, ``CLASS_TOKEN_POSITION``, ``PREC``, ``LOSS`` (``ce``;
``bce`` on multi-label data) and ``W`` (KgCoOp's weight, kept for configs that put it under
``TRAINER.COOP``). Loss: CE (plus the configured calibration regularizers).
"""
import torch.nn.functional as F

from ..engine.trainer import TRAINER_REGISTRY
from .base import ClipPromptTrainer
from .learners import context_learner


@TRAINER_REGISTRY.register()
class CoOp(ClipPromptTrainer):
    cfg_node = "COOP"
    cfg_defaults = dict(N_CTX=16, CSC=False, CTX_INIT="", PREC="fp16", CLASS_TOKEN_POSITION="end", W=8.0, LOSS="ce")
    catalog_entry = {"name": "coop", "config": "vit_b16_ep50_ctxv1", "ml_config": "vit_b16_bce_ep10", "paper": "CoOp",
                     "default": True}

    @property
    def supports_outliers(self):
        t = self.tcfg
        return not t.CSC and t.CLASS_TOKEN_POSITION == "end"

    def build_learner(self):
        return context_learner(self)

    def outlier_text_features(self, words):
        x, ids = self.learner.prompts_for_names(self.clip, words)
        return F.normalize(self.clip.encode_text_embeddings(x, ids), dim=-1)
