"""KgCoOp (Yao et al., CVPR 2023): CoOp plus knowledge-guided context optimisation.

Loss: ``CE + W * (1 - mean_c cos(t_c, t0_c))`` where ``t_c`` is class c's text feature under
the learned prompt and ``t0_c`` under the dataset's hand-crafted template, from KgCoOp's own table
(:data:`KGCOOP_TEMPLATES`: c43ccc3 ``trainers/kgcoop.py`` line 37, also TCPT's; it differs from the
default table for DTD). Keys ``TRAINER.KGCOOP`` (CoOp's, plus ``W``, default 8.0).
"""
import logging

from ..engine.trainer import TRAINER_REGISTRY
from .config import node_defaults
from .coop import CoOp
from .learners import context_learner
from .templates import DATASET_TEMPLATES

KGCOOP_TEMPLATES = {**DATASET_TEMPLATES, "DescribableTextures": "a photo of a {}, a type of texture."}


@TRAINER_REGISTRY.register()
class KgCoOp(CoOp):
    cfg_node = "KGCOOP"
    templates = (KGCOOP_TEMPLATES, "KgCoOp c43ccc3 trainers/kgcoop.py CUSTOM_TEMPLATES")
    catalog_entry = {"name": "kgcoop", "config": "vit_b16_ep100_ctxv1", "ml_config": "vit_b16_bce_ep10",
                     "paper": "KgCoOp"}

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        coop = cfg.TRAINER.get("COOP")
        if coop is not None:
            changed = [k for k, v in node_defaults(CoOp).items() if k in coop and coop[k] != v]
            if changed:
                logging.getLogger("cpt").warning(
                    f"KgCoOp reads TRAINER.KGCOOP.*; TRAINER.COOP.{'/'.join(changed)} differ from the "
                    f"defaults and are ignored (upstream KgCoOp configs used TRAINER.COOP)")

    def build_learner(self):
        self.w = float(self.tcfg.W)
        return context_learner(self)

    def method_losses(self, out, labels):
        cos = (out["text_features"] * self.zs_text_features).sum(-1)
        return {"loss_kg": self.w * (1.0 - cos.mean())}
