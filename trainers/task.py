"""The task of a prompt learner: its loss (``TRAINER.<NODE>.LOSS``), targets and training accuracy, and
the build-time check that the loss, the dataset's labels and the evaluator agree."""
import torch.nn.functional as F

from .config import PREC_CHOICES

ML_EVALUATOR = "MultiLabelClassification"


def masked_bce(logits, targets):
    """Binary cross-entropy with logits on multi-hot ``targets`` (1 / 0 / -1 unknown), the mean over
    the known entries (``sum_{y != -1} bce(z, y) / #known``; 0 when none): -1 carries no gradient."""
    targets = targets.to(logits.device)
    known = (targets >= 0).to(logits.dtype)
    per = F.binary_cross_entropy_with_logits(logits, (targets == 1).to(logits.dtype), reduction="none")
    return (per * known).sum() / known.sum().clamp_min(1.0)


def loss(t, logits, labels):
    """Trainer ``t``'s task loss: CE on class indices (``LOSS ce``) or :func:`masked_bce` on multi-hot
    targets (``bce``)."""
    if t.loss_name == "bce":
        return masked_bce(logits, as_targets(labels, t.num_classes))
    return F.cross_entropy(logits, labels)


def as_targets(labels, num_classes):
    """Multi-hot targets ``(N, C)`` (1 / 0 / -1) of a batch: the labels themselves for multi-label
    data, one-hot for single-label data."""
    return labels if labels.dim() == 2 else F.one_hot(labels.long(), num_classes).to(labels.dtype)


def train_accuracy(logits, labels):
    """Top-1 accuracy in percent; multi-label: correct pairs (p >= 0.5 vs label) over known entries."""
    if labels.dim() == 2:
        known = labels >= 0
        ok = ((logits >= 0) == (labels == 1)) & known
        return float(ok.sum() * 100.0 / known.sum().clamp_min(1))
    return float((logits.argmax(1) == labels).float().mean() * 100)


def check_node(trainer, cfg):
    """``TRAINER.<NODE>`` exists and its ``PREC`` and ``LOSS`` are ones the trainer accepts."""
    key = f"TRAINER.{trainer.cfg_node}"
    node = cfg.TRAINER.get(trainer.cfg_node)
    if node is None:
        raise KeyError(f"config has no {key}; call trainers.config.extend_cfg(cfg) before merging yaml files")
    if node.PREC not in PREC_CHOICES:
        raise ValueError(f"{key}.PREC must be one of {PREC_CHOICES}, got {node.PREC!r}")
    if "LOSS" in node and str(node.LOSS).lower() not in trainer.loss_choices:
        raise ValueError(f"{key}.LOSS must be one of {trainer.loss_choices}, got {node.LOSS!r}")


def check_task(t):
    """The loss of trainer ``t``, the dataset's labels and the evaluator agree (fails at build)."""
    key = f"TRAINER.{t.cfg_node}.LOSS"
    evaluator, name = t.cfg.TEST.EVALUATOR, t.cfg.DATASET.NAME
    if t.multilabel and evaluator != ML_EVALUATOR:
        raise ValueError(f"dataset {name} is multi-label; set TEST.EVALUATOR {ML_EVALUATOR} "
                         f"(got {evaluator!r}; the dataset yaml normally sets it)")
    if "LOSS" not in t.tcfg:
        return
    if t.multilabel and not t.multilabel_loss:
        raise ValueError(f"{key} is '{t.loss_name}' (softmax cross-entropy over one label per image), "
                         f"but dataset {name} is multi-label; set {key} bce")
    if t.multilabel_loss and not t.multilabel and not t.onehot_single_label:
        raise ValueError(f"{key} '{t.loss_name}' needs a multi-label dataset (multi-hot labels and "
                         f"TEST.EVALUATOR {ML_EVALUATOR}); {name} is single-label: use {key} ce")
