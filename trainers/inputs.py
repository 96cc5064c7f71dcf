"""The training regularizers of a prompt learner (``CALIB.METHOD``, docs/design.md section 5.1) and
the inputs it provides them: name -> ``fn(step)``, ``step`` holding the batch's ``out`` (of
``forward_logits``), calibration ``logits``, ``labels`` and ``images``. A multi-label loss gives
``probs`` / ``targets`` instead of ``labels``; a method adds inputs by extending its trainer's
``providers()``; only the needed ones are computed. DOR's outlier words: an
:class:`~calibration.regularizers.OutlierSampler`.
"""
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from ..calibration.regularizers import (
    OutlierSampler,
    RegContext,
    apply_regularizers,
    build_regularizers,
    check_requirements,
)
from .task import as_targets


def default_providers(t):
    """The inputs every prompt learner ``t`` provides (its capabilities decide some)."""
    zs = lambda s: t.zs_text_features  # noqa: E731
    p = {"logits": lambda s: s.logits, "image_features": lambda s: s.out.get("image_features"),
         "logit_scale": lambda s: t.clip.logit_scale, "zs_text_features": zs,
         "zs_logits": lambda s: zs_logits(t, s), "text_similarity": lambda s: zs(s) @ zs(s).t()}
    if t.multilabel_loss:
        p.update(probs=lambda s: torch.sigmoid(s.logits), targets=lambda s: as_targets(s.labels, t.num_classes))
    else:
        p["labels"] = lambda s: s.labels
    if t.image_independent_text:
        p["text_features"] = lambda s: s.out.get("text_features")
    if t.supports_outliers:
        p["outlier_text_features"] = lambda s: t.outlier_text_features(t.inputs.outliers()[0])
        p["outlier_zs_text_features"] = lambda s: t.inputs.outliers()[1]
    return p


@torch.no_grad()
def zs_logits(t, step):
    """Zero-shot logits of the batch, under the same probability map as the trained logits."""
    imf = step.out["image_features"] if t.frozen_image_encoder else \
        F.normalize(t.clip.encode_image(step.images), dim=-1)
    cos = imf.float() @ t.zs_text_features.t()
    if t.multilabel:
        scale, bias = t.probability_map()
        return scale * cos + bias
    return t.clip.logit_scale * cos


class RegularizerInputs:
    def __init__(self, trainer):
        self.trainer = trainer
        self.sampler = None
        self.regularizers = self._build()

    def _build(self):
        t = self.trainer
        methods = list(t.cfg.CALIB.METHOD)
        if not methods:
            return []
        regs = build_regularizers(methods, t.cfg.CALIB)
        for r in regs:
            need = sorted({"probs", "targets"} & set(r.needs))
            if need and not t.multilabel_loss:
                loss = (f"TRAINER.{t.cfg_node}.LOSS is '{t.loss_name}' (softmax over one label per image)"
                        if "LOSS" in t.tcfg else f"{type(t).__name__} has no training loss")
                raise ValueError(
                    f"calibration regularizer '{r.name}' (CALIB.METHOD) needs multi-label probabilities and "
                    f"targets {need}, but {loss}; use a multi-label dataset with TRAINER.{t.cfg_node}.LOSS bce")
        providers = t.providers()
        check_requirements(regs, providers, type(t).__name__)
        self.needed = {n: providers[n] for r in regs for n in r.needs}
        t.logger.info(f"Calibration regularizers: {regs}")
        for r in regs:  # a batch size that leaves a regularizer without effect (issue 26)
            warning = r.batch_warning(t.cfg.DATALOADER.TRAIN_X.BATCH_SIZE)
            if warning:
                t.logger.warning(f"Warning: {warning}")
        return regs

    # --- DOR's outlier words ---------------------------------------------
    def start_outliers(self):
        """DOR's vocabulary and its zero-shot features (when ``CALIB.METHOD`` has DOR)."""
        t = self.trainer
        dor = next((r for r in self.regularizers if r.name == "dor"), None)
        if dor is not None:
            self.sampler = OutlierSampler(dor.params, t.classnames,
                                          lambda words: t.clip.zero_shot_text_features(words, t.template))
            t.logger.info(f"DOR: {len(self.sampler.words)} outlier words, {self.sampler.n} per epoch")

    def outliers(self):
        """This epoch's outlier words and their zero-shot text features."""
        t, s = self.trainer, self.sampler
        i = s.draw(t.zs_text_features, t.cfg.SEED, t.epoch)
        return [s.words[k] for k in i.tolist()], s.zs[i.to(s.zs.device)]

    # --- a training step ---------------------------------------------------
    def apply(self, task, out, logits, labels, images):
        """``(loss, logs)``: the task loss with the regularizers' terms on this batch."""
        if not self.regularizers:
            return task, {}
        step = SimpleNamespace(out=out, logits=logits, labels=labels, images=images)
        ctx = RegContext(**{n: fn(step) for n, fn in self.needed.items()})
        return apply_regularizers(self.regularizers, ctx, task)
