"""Drop-in replacement for upstream Dassl.pytorch's ``dassl/evaluation/evaluator.py``.

Defines what the upstream module defines (``EvaluatorBase`` and ``Classification``
registered in ``EVALUATOR_REGISTRY``) and reports, in percent, accuracy,
error rate and macro-F1 as upstream does plus the calibration metrics of this
project's ``calibration`` package (DESIGN.md 5.3 conventions):

    accuracy, error_rate, macro_f1, ece, mce, adaptive_ece, [piece], mce_max, nll, brier

``piece`` appears when the trainer passes image features:
``evaluator.process(output, label, features)``. Upstream trainers call
``process(output, label)`` and are unaffected. The ``calibration`` package must
be importable (``pip install -e .`` of this project). Install with
``python dassl_patches/install.py`` (see dassl_patches/README.md).
"""
import os.path as osp
from collections import OrderedDict

import numpy as np
import torch

from cpt.calibration.metrics import classification_metrics, classification_stats, knn_proximity

from .build import EVALUATOR_REGISTRY


class EvaluatorBase:
    """Base evaluator."""

    def __init__(self, cfg):
        self.cfg = cfg

    def reset(self):
        raise NotImplementedError

    def process(self, mo, gt, features=None):
        raise NotImplementedError

    def evaluate(self):
        raise NotImplementedError


def _cfg_get(cfg, dotted, default):
    node = cfg
    for part in dotted.split("."):
        if not hasattr(node, part):
            return default
        node = getattr(node, part)
    return node


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Evaluator for classification, with calibration metrics (percent).

    ``process(mo, gt, features=None)``: logits (B, C), int labels (B,), optional
    image features (B, D) for PIECE (kNN proximity with k = TEST.PROXIMITY_K,
    default 10, over the evaluated set, or over the features given to
    ``set_proximity_reference`` when TEST.PROXIMITY_POOL == "train").
    After ``evaluate()``: ``self.confidences``, ``self.correct`` (numpy).
    """

    def __init__(self, cfg, lab2cname=None, **kwargs):
        super().__init__(cfg)
        self._lab2cname = lab2cname
        self._reference = None
        self.cmat = None
        if cfg.TEST.PER_CLASS_RESULT:
            assert lab2cname is not None, "TEST.PER_CLASS_RESULT needs lab2cname"
        self.reset()

    def reset(self):
        self._conf, self._pred, self._label, self._nll, self._brier = [], [], [], [], []
        self._feats = []
        self._total = 0
        self._correct = 0
        self.confidences = None
        self.correct = None
        self.proximity = None

    def set_proximity_reference(self, features):
        self._reference = None if features is None else torch.as_tensor(features).detach()

    def process(self, mo, gt, features=None):
        # mo (torch.Tensor): model output [batch, num_classes]
        # gt (torch.LongTensor): ground truth [batch]
        mo = mo.detach() if torch.is_tensor(mo) else torch.as_tensor(np.asarray(mo))
        gt = gt.detach() if torch.is_tensor(gt) else torch.as_tensor(np.asarray(gt))
        stats = classification_stats(mo, gt)
        label = gt.cpu().numpy().astype(np.int64).reshape(-1)
        self._conf.append(stats["confidence"])
        self._pred.append(stats["pred"])
        self._nll.append(stats["nll"])
        self._brier.append(stats["brier"])
        self._label.append(label)
        self._total += label.shape[0]
        self._correct += int((stats["pred"] == label).sum())
        if features is not None:
            self._feats.append(torch.as_tensor(features).detach())

    def _proximity(self):
        if not self._feats:
            return None
        feats = torch.cat([f.to(self._feats[0].device) for f in self._feats], dim=0)
        if feats.shape[0] != self._total:
            print(f"PIECE skipped: features for {feats.shape[0]} of {self._total} samples")
            return None
        if feats.dtype not in (torch.float32, torch.float64):
            feats = feats.float()
        k = int(_cfg_get(self.cfg, "TEST.PROXIMITY_K", 10))
        pool = str(_cfg_get(self.cfg, "TEST.PROXIMITY_POOL", "test")).lower()
        ref = None
        if pool == "train" and self._reference is not None:
            ref = self._reference.to(device=feats.device, dtype=feats.dtype)
        available = feats.shape[0] - 1 if ref is None else ref.shape[0]
        if available < 1:
            return None
        prox = knn_proximity(feats, k=min(k, available), reference=ref, normalize=True)
        return prox.double().cpu().numpy()

    def evaluate(self):
        conf = np.concatenate(self._conf)
        pred = np.concatenate(self._pred)
        label = np.concatenate(self._label)
        self.proximity = self._proximity()
        frac = classification_metrics(
            conf, pred, label,
            nll_values=np.concatenate(self._nll),
            brier_values=np.concatenate(self._brier),
            proximity=self.proximity,
        )
        results = OrderedDict((k, 100.0 * v) for k, v in frac.items())
        self.confidences = conf
        self.correct = pred == label

        lines = ["=> result", f"* total: {self._total:,}", f"* correct: {self._correct:,}"]
        for key, v in results.items():
            lines.append(f"* {'error' if key == 'error_rate' else key}: {v:.2f}%")
        print("\n".join(lines))

        if self.cfg.TEST.PER_CLASS_RESULT:
            print("=> per-class result")
            accs = []
            for c in np.unique(label):
                m = label == c
                total = int(m.sum())
                correct = int((pred[m] == c).sum())
                acc = 100.0 * correct / total
                accs.append(acc)
                print(f"* class: {int(c)} ({self._lab2cname[int(c)]})\t"
                      f"total: {total:,}\tcorrect: {correct:,}\tacc: {acc:.2f}%")
            mean_acc = float(np.mean(accs))
            print(f"* average: {mean_acc:.2f}%")
            results["perclass_accuracy"] = mean_acc

        if self.cfg.TEST.COMPUTE_CMAT:
            n = int(max(label.max(), pred.max())) + 1
            cm = np.bincount(label * n + pred, minlength=n * n).reshape(n, n).astype(np.float64)
            rows = cm.sum(axis=1, keepdims=True)
            self.cmat = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
            save_path = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
            torch.save(self.cmat, save_path)
            print(f"Confusion matrix is saved to {save_path}")

        return results
