"""``CALIB.POSTHOC`` inside the prompt-learner trainers (docs/design.md 5.2).

:class:`PosthocStep` (one per trainer) owns the calibrator and hands it the inputs it ``needs``
from :func:`posthoc_providers` (name -> ``fn(outputs)`` of the collected test outputs):
``val_logits`` / ``val_labels`` (the training run's validation split; a ``saved`` calibrator is
fitted on them at the first test after training and written as ``posthoc.json``, which
``--eval-only`` runs must find in ``--model-dir``: test labels never fit anything), the zero-shot
and tuned text features of the test (``new_*``) and training (``base_*``) classes (their names are
saved as ``train_classnames.json`` beside every checkpoint), and ``zs_logits``. Single-label only;
the validation evaluation of ``TEST.FINAL_MODEL best_val`` sees raw logits. ``results()`` goes into
``results.json`` (``posthoc_state``).
"""
import json
import os

import torch

from ..calibration.fileio import atomic_write_json
from ..calibration.posthoc import build_posthoc, load_posthoc

POSTHOC_FILE = "posthoc.json"
CLASSNAMES_FILE = "train_classnames.json"

_TEXT = ("class text features for arbitrary class names under the learned prompt (image-independent, "
         "generic context); {who} does not provide them")
# why a trainer lacks an input (the error names the calibrator and this reason)
MISSING_REASON = {"zs_logits": "zero-shot logits from the frozen image encoder; {who} prompts the image encoder",
                  **{n: _TEXT for n in ("new_zs", "new_tuned", "base_zs", "base_tuned")}}


def save_train_classnames(directory, classnames):
    """Write the training class names atomically (read back by DAC at test time)."""
    return atomic_write_json(list(classnames), os.path.join(directory, CLASSNAMES_FILE), indent=None)


def posthoc_providers(step):
    """The post-hoc inputs trainer ``step.trainer`` can provide: name -> ``fn(outputs)``."""
    t = step.trainer
    p = {"val_logits": lambda o: step.val_outputs()["logits"], "val_labels": lambda o: step.val_outputs()["labels"]}
    if t.image_independent_text and t.supports_outliers:
        as_float = lambda f: lambda o: f().float()  # noqa: E731
        p.update(new_tuned=as_float(t.text_head.classes), new_zs=as_float(lambda: t.zs_text_features),
                 base_tuned=as_float(lambda: t.outlier_text_features(step.base_classnames())),
                 base_zs=as_float(lambda: t.clip.zero_shot_text_features(step.base_classnames(), t.template)))
    if t.frozen_image_encoder:
        p["zs_logits"] = lambda o: float(t.clip.logit_scale) * o["features"].float() @ t.zs_text_features.float().t()
    return p


class PosthocStep:
    def __init__(self, trainer):
        cfg = trainer.cfg
        self.trainer = trainer
        self.name = str(cfg.CALIB.POSTHOC or "none").lower()
        node = cfg.CALIB.get(self.name.upper())  # CALIB.<NAME>: the calibrator's parameters
        self.cal = build_posthoc(self.name, **({k.lower(): v for k, v in node.items()}
                                               if isinstance(node, dict) else {}))
        self.loaded_from = None          # model directory of an --eval-only run
        self.train_classnames = None
        self.note = ""
        self._val = None
        self.providers = posthoc_providers(self)
        if self.active and trainer.multilabel:
            raise ValueError(f"CALIB.POSTHOC '{self.name}' is for single-label classification; "
                             f"dataset {cfg.DATASET.NAME} is multi-label (set CALIB.POSTHOC none)")
        missing = [n for n in self.cal.needs if n not in self.providers]  # none: needs nothing
        if missing:
            reason = MISSING_REASON.get(missing[0], f"the inputs {missing}, which {{who}} does not provide")
            raise ValueError(f"CALIB.POSTHOC {self.name} needs {reason.format(who=type(trainer).__name__)}")

    @property
    def active(self):
        return self.name != "none"

    # --- persistence ---------------------------------------------------
    def before_train(self):
        """A training run: the training class names beside the checkpoints (read back by DAC)."""
        if self.trainer.learner is not None:
            save_train_classnames(self.trainer.output_dir, self.trainer.classnames)

    def on_load(self, directory):
        """After ``load_model(directory)``: read the fitted state / training class names
        (in a training run, reloading the best model keeps fitting on this run's data)."""
        if self.trainer.trained_here:
            return
        self.loaded_from = directory
        names = os.path.join(directory, CLASSNAMES_FILE)
        if os.path.isfile(names):
            with open(names, encoding="utf-8") as f:
                self.train_classnames = json.load(f)
        path = os.path.join(directory, POSTHOC_FILE)
        if self.cal.saved and os.path.isfile(path):
            cal = load_posthoc(path)
            if cal.name != self.name:
                raise ValueError(f"{path} holds post-hoc calibrator '{cal.name}', CALIB.POSTHOC is '{self.name}'")
            self.cal = cal

    # --- inputs ----------------------------------------------------------
    def val_outputs(self):
        t = self.trainer
        if self._val is None:
            if t.val_loader is None or not len(t.dm.dataset.val):
                raise ValueError(f"CALIB.POSTHOC {self.name} needs a validation split; "
                                 f"dataset {t.cfg.DATASET.NAME} has none")
            self._val = t.collect_outputs(t.val_loader, "val")
        return self._val

    def base_classnames(self):
        if self.train_classnames is not None:
            return self.train_classnames
        if self.loaded_from is not None:
            raise FileNotFoundError(f"CALIB.POSTHOC {self.name}: no {CLASSNAMES_FILE} in the model directory "
                                    f"{self.loaded_from} (the training class names); retrain with this version")
        return list(self.trainer.classnames)

    # --- fitting and applying -----------------------------------------
    def apply(self, outputs, split):
        logits = outputs["logits"]
        if not self.active or split == "val":
            return logits
        t, cal = self.trainer, self.cal
        inputs = {}
        if not (cal.saved and cal.fitted):
            if cal.saved and not t.trained_here:
                where = f"the model directory {self.loaded_from}" if self.loaded_from else "this evaluation-only run"
                raise FileNotFoundError(
                    f"CALIB.POSTHOC {self.name}: no {POSTHOC_FILE} in {where}; it is fitted on the validation "
                    f"split at the end of training (train with CALIB.POSTHOC {self.name}, e.g. "
                    f"--calib-config-file configs/calibration/{self.name}.yaml)")
            with torch.no_grad():
                inputs = {n: self.providers[n](outputs) for n in cal.needs}
            cal.fit(**inputs)
            if cal.saved:
                path = cal.save(os.path.join(t.output_dir, POSTHOC_FILE))
                t.logger.info(f"Post-hoc {self.name} fitted on the validation split: {cal.describe()}, "
                              f"saved to {path}")
        out = cal.apply(logits, **inputs)
        self.note = cal.describe()
        t.logger.info(f"Post-hoc calibration ({self.name}): {self.note}; metrics below are after it")
        return torch.as_tensor(out, dtype=torch.float32)

    def results(self):
        """``results.json``'s ``posthoc_state`` (an active calibrator)."""
        if not self.active:
            return {}
        return {"posthoc_state": {"name": self.name, "state": self.cal.summary(), "note": self.note,
                                  "fitted_on": "validation split of the training run" if self.cal.saved else None}}
