"""``CALIB.POSTHOC`` inside the prompt-learner trainers (DESIGN.md 5.2).

One object per trainer, :class:`PosthocStep`, owns the calibrator of ``calibration.posthoc``:

- ``temperature``: fitted by NLL on the validation split of the training run (the base classes in
  base-to-new) at the first test after training, on the deployed model; saved as
  ``posthoc.json`` beside the checkpoint (the run's output directory). An ``--eval-only`` run
  loads it from ``--model-dir``; a model directory without it is an error (test labels are never
  used to fit).
- ``dac``: per-test-class factors from the zero-shot and tuned text features of the test classes
  and of the training classes. The training class names are saved as ``train_classnames.json``
  beside every checkpoint, so DAC applies to any trained model directory; in the training run
  itself the test classes are the training classes (every factor is 1).
- ``sals``: stateless, from the zero-shot logits of the same (frozen) image features.

What ran is logged, and ``info()`` goes into ``results.json`` (key ``posthoc_state``).
Post-hoc calibration is single-label only; the validation evaluation used for model selection
(``TEST.FINAL_MODEL best_val``) sees raw logits.
"""
import json
import os

import torch

from cpt.calibration.posthoc import PosthocCalibrator, build_posthoc

POSTHOC_FILE = "posthoc.json"
CLASSNAMES_FILE = "train_classnames.json"


def save_train_classnames(directory, classnames):
    """Write the training class names atomically (read back by DAC at test time)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, CLASSNAMES_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(list(classnames), f)
    os.replace(tmp, path)
    return path


class PosthocStep:
    def __init__(self, trainer):
        cfg = trainer.cfg
        self.trainer = trainer
        self.name = str(cfg.CALIB.POSTHOC or "none").lower()
        params = {"k": cfg.CALIB.DAC.K, "base_threshold": cfg.CALIB.DAC.BASE_THRESHOLD} if self.name == "dac" else {}
        self.cal = build_posthoc(self.name, **params)
        self.loaded_from = None          # model directory of an --eval-only run
        self.train_classnames = None
        self.note = ""
        self._check(trainer)

    @property
    def active(self):
        return self.name != "none"

    def _check(self, t):
        if not self.active:
            return
        who = type(t).__name__
        if t.multilabel:
            raise ValueError(f"CALIB.POSTHOC '{self.name}' is for single-label classification; "
                             f"dataset {t.cfg.DATASET.NAME} is multi-label (set CALIB.POSTHOC none)")
        if self.name == "dac" and not (t.image_independent_text and t.supports_outliers):
            raise ValueError(f"CALIB.POSTHOC dac needs class text features for arbitrary class names under the "
                             f"learned prompt (image-independent, generic context); {who} does not provide them")
        if self.name == "sals" and not t.frozen_image_encoder:
            raise ValueError(f"CALIB.POSTHOC sals needs zero-shot logits from the frozen image encoder; "
                             f"{who} prompts the image encoder")

    # --- persistence ---------------------------------------------------
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
        if self.name == "temperature":
            path = os.path.join(directory, POSTHOC_FILE)
            if os.path.isfile(path):
                cal = PosthocCalibrator.load(path)
                if cal.name != self.name:
                    raise ValueError(f"{path} holds post-hoc calibrator '{cal.name}', CALIB.POSTHOC is '{self.name}'")
                self.cal = cal

    # --- fitting and applying -----------------------------------------
    def apply(self, outputs, split):
        logits = outputs["logits"]
        if not self.active or split == "val":
            return logits
        t = self.trainer
        if self.name == "temperature":
            if not self.cal.fitted:
                self._fit_temperature()
            out = self.cal.apply(logits)
            self.note = f"temperature T={self.cal.state['temperature']:.4f}"
        elif self.name == "dac":
            self._fit_dac()
            out = self.cal.apply(logits)
            f = torch.tensor(self.cal.state["factors"])
            self.note = f"DAC factors min {f.min():.3f} mean {f.mean():.3f} max {f.max():.3f} over {len(f)} classes"
        else:  # sals
            feats = outputs["features"].float()
            zs = t.zero_shot_text_features_for_posthoc().float()
            zs_logits = float(t.clip.logit_scale) * feats @ zs.t()
            out = self.cal.apply(logits, zs_logits=zs_logits)
            self.note = "SaLS (zero-shot logit scale)"
        t.logger.info(f"Post-hoc calibration ({self.name}): {self.note}; metrics below are after it")
        return torch.as_tensor(out, dtype=torch.float32)

    def _fit_temperature(self):
        t = self.trainer
        if not self.trainer.trained_here:
            where = f"the model directory {self.loaded_from}" if self.loaded_from else "this evaluation-only run"
            raise FileNotFoundError(
                f"CALIB.POSTHOC temperature: no {POSTHOC_FILE} in {where}; "
                "the temperature is fitted on the validation split at the end of training "
                "(train with CALIB.POSTHOC temperature, e.g. --calib-config-file configs/calibration/temperature.yaml)")
        if t.val_loader is None or not len(t.dm.dataset.val):
            raise ValueError(f"CALIB.POSTHOC temperature needs a validation split; dataset {t.cfg.DATASET.NAME} has none")
        val = t.collect_outputs(t.val_loader, "val")
        self.cal.fit(val_logits=val["logits"], val_labels=val["labels"])
        path = self.cal.save(os.path.join(t.output_dir, POSTHOC_FILE))
        t.logger.info(f"Temperature fitted on the validation split ({len(val['labels'])} images): "
                      f"T={self.cal.state['temperature']:.4f}, saved to {path}")

    def _fit_dac(self):
        t = self.trainer
        base = self.train_classnames
        if base is None:
            if self.loaded_from is not None:
                raise FileNotFoundError(f"CALIB.POSTHOC dac: no {CLASSNAMES_FILE} in the model directory "
                                        f"{self.loaded_from} (the training class names); retrain with this version")
            base = list(t.classnames)
        with torch.no_grad():
            new_tuned = t._text_for_eval().float()
            new_zs = t.zero_shot_text_features_for_posthoc().float()
            base_tuned = t.outlier_text_features(base).float()
            base_zs = t.clip.zero_shot_text_features(base, t.template).float()
        self.cal.fit(new_zs=new_zs, base_zs=base_zs, new_tuned=new_tuned, base_tuned=base_tuned)

    def info(self):
        if not self.active:
            return None
        state = self.cal.state
        if self.name == "dac" and "factors" in state:
            f = state["factors"]
            state = {"factor_min": min(f), "factor_mean": sum(f) / len(f), "factor_max": max(f)}
        return {"name": self.name, "state": state, "note": self.note,
                "fitted_on": "validation split of the training run" if self.name == "temperature" else None}
