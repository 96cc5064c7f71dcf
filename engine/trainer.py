"""Trainer lifecycle with Dassl's API: ``TrainerBase`` -> ``SimpleTrainer`` -> ``TrainerX``.

A method subclasses ``TrainerX``, registers itself with ``@TRAINER_REGISTRY.register()`` and overrides
``build_model``, ``forward_backward``, ``model_inference`` (and optionally ``parse_batch_train``,
``before_evaluation``, ``apply_posthoc``). Checkpoints hold the learnable state (parameters with
``requires_grad=True`` and persistent buffers) plus optimizer, scheduler and RNG state; one is written
after every epoch (atomically), so an interrupted run resumes from its last complete epoch and ends with
the same weights as an uninterrupted one.
"""
import datetime
import os
import time
from collections import OrderedDict, defaultdict

import numpy as np
import torch

from ..calibration.registry import Registry
from .checkpoint import CheckpointMixin, preserve_rng
from .curves import Curves
from .evaluation import build_evaluator
from .faults import fault_point
from .identity import IdentityMixin
from .utils import AverageMeter, MetricMeter, get_logger, get_rank, is_distributed

TRAINER_REGISTRY = Registry("TRAINER")


def build_trainer(cfg):
    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg)


class TrainerBase(CheckpointMixin):
    """Model registry, checkpointing and the generic train loop."""

    def __init__(self):
        self._models = OrderedDict()
        self._optims = OrderedDict()
        self._scheds = OrderedDict()
        self.logger = get_logger()

    # --- models -------------------------------------------------------
    def register_model(self, name="model", model=None, optim=None, sched=None):
        if self.__dict__.get("_models") is None:
            raise AttributeError("Call super().__init__() before register_model")
        if name in self._models:
            raise KeyError(f"Model name {name!r} is already registered")
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names=None):
        names_real = list(self._models.keys())
        if names is None:
            return names_real
        names = [names] if isinstance(names, str) else names
        unknown = [n for n in names if n not in names_real]
        if unknown:
            raise KeyError(f"Unknown model name {unknown[0]!r}; registered: {names_real}")
        return names

    def _present(self, table, names=None):
        """The non-None entries of ``table`` (``self._optims`` / ``self._scheds``) for ``names``."""
        return [table[n] for n in self.get_model_names(names) if table[n] is not None]

    def _trainer_name(self):
        return type(self).__name__

    def set_model_mode(self, mode="train", names=None):
        if mode not in ("train", "test", "eval"):
            raise ValueError(f"mode must be train/eval, got {mode!r}")
        for name in self.get_model_names(names):
            self._models[name].train(mode == "train")

    def update_lr(self, names=None):
        for sched in self._present(self._scheds, names):
            sched.step()

    def detect_anomaly(self, loss):
        """Stop at the first non-finite loss (before it reaches the weights)."""
        if not torch.isfinite(loss).all():
            value = loss.detach().float().flatten()[0].item() if loss.numel() else float("nan")
            epoch, batch = getattr(self, "epoch", -1) + 1, getattr(self, "batch_idx", -1) + 1
            lr = self.get_current_lr() if self.get_model_names() else "?"
            raise FloatingPointError(
                f"training loss is {value} at epoch {epoch}, batch {batch} (the first non-finite loss; "
                f"learning rate {lr}): training stopped. Lower OPTIM.LR, or check the data and CALIB weights")

    # --- loop ---------------------------------------------------------
    def train(self, start_epoch, max_epoch):
        self.start_epoch = start_epoch
        self.max_epoch = max_epoch
        self.before_train()
        for self.epoch in range(self.start_epoch, self.max_epoch):
            self.before_epoch()
            self.run_epoch()
            self.after_epoch()
        self.after_train()

    def before_epoch(self):
        """Hook (``before_train``, ``after_epoch``, ``after_train``: see :class:`SimpleTrainer`)."""

    def forward_backward(self, batch):
        raise NotImplementedError

    def model_inference(self, input):
        raise NotImplementedError

    # --- optimisation -------------------------------------------------
    def model_zero_grad(self, names=None):
        for optim in self._present(self._optims, names):
            optim.zero_grad(set_to_none=True)

    def model_backward(self, loss):
        self.detect_anomaly(loss)
        loss.backward()

    def _sync_grads(self, names):
        """Average gradients over DDP ranks (the registered learnable parameters only)."""
        if not is_distributed():
            return
        world = torch.distributed.get_world_size()
        for name in self.get_model_names(names):
            for p in self._models[name].parameters():
                if p.requires_grad:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= world

    def model_update(self, names=None):
        self._sync_grads(names)
        for optim in self._present(self._optims, names):
            optim.step()

    def model_backward_and_update(self, loss, names=None):
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)


class SimpleTrainer(IdentityMixin, TrainerBase):
    """Data, model, evaluator and the evaluation loop."""

    def __init__(self, cfg):
        super().__init__()
        self.check_cfg(cfg)
        self.cfg = cfg
        cuda = torch.cuda.is_available() and cfg.USE_CUDA
        self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR
        self.dataset_name = cfg.DATASET.NAME
        self.last_results = {}
        self.build_data_loader()
        self.build_model()
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname,
                                         groups=getattr(self.dm.dataset, "groups", None))
        self.init_identity(cfg)

    def check_cfg(self, cfg):
        pass

    def build_data_loader(self):
        from .data import DataManager  # torchvision: imported when data is built, not with the registry

        dm = DataManager(self.cfg)
        self.train_loader_x = dm.train_loader_x
        self.train_loader_u = dm.train_loader_u
        self.val_loader = dm.val_loader
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname
        self.classnames = list(dm.classnames)
        self.dm = dm

    def build_model(self):
        raise NotImplementedError

    def before_train(self):
        self.start_epoch = self.resume_model_if_exist(self.cfg.RESUME or self.cfg.OUTPUT_DIR)
        self.time_start = time.time()
        self.curves = Curves(self.output_dir, self.start_epoch) if get_rank() == 0 else None

    def after_train(self):
        if getattr(self, "curves", None) is not None:
            self.curves.close()
        self.logger.info("Finish training")
        if self.max_epoch == 0 or self.start_epoch >= self.max_epoch:
            # Nothing ran here: a checkpoint of the final state must exist (MAX_EPOCH 0: the initial prompts).
            if self.get_model_names() and not os.path.isfile(os.path.join(
                    self.output_dir, self.get_model_names()[0], f"model.pth.tar-{self.max_epoch}")):
                self.save_model(self.max_epoch - 1, self.output_dir)
        if not self.cfg.TEST.NO_TEST:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                self.logger.info("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
            else:
                self.logger.info("Deploy the last-epoch model")
            self.test()
        elapsed = str(datetime.timedelta(seconds=round(time.time() - self.time_start)))
        self.logger.info(f"Elapsed: {elapsed}")

    def after_epoch(self):
        curr = None
        if not self.cfg.TEST.NO_TEST and self.cfg.TEST.FINAL_MODEL == "best_val":
            curr = self.test(split="val")
            if curr > self.best_result:
                self.best_result, self.best_epoch = curr, self.epoch + 1
                self.save_model(self.epoch, self.output_dir, val_result=curr, model_name="model-best.pth.tar")
        if getattr(self, "curves", None) is not None:  # before the checkpoint: a resume rewrites later rows
            meters = getattr(self, "epoch_meters", None)
            self.curves.add({"epoch": self.epoch + 1, "lr": self.get_current_lr() if self.get_model_names() else None,
                             **({k: m.avg for k, m in meters.meters.items()} if meters else {}), "val": curr,
                             "time_s": round(time.time() - self.time_start, 3)})
        # Every epoch: a resumable checkpoint; the previous one is dropped unless kept by CHECKPOINT_FREQ.
        self.save_model(self.epoch, self.output_dir)
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        prev = self.epoch  # file name of the previous epoch's checkpoint
        if prev >= 1 and get_rank() == 0 and not (freq > 0 and prev % freq == 0):
            for name in self.get_model_names():
                old = os.path.join(self.output_dir, name, f"model.pth.tar-{prev}")
                if os.path.isfile(old):
                    os.remove(old)

    # --- evaluation ---------------------------------------------------
    def parse_batch_test(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def before_evaluation(self, split):
        """Hook: compute what is constant during one evaluation (e.g. text features)."""

    def after_evaluation(self):
        """Hook: release what ``before_evaluation`` cached."""

    def _as_output_dict(self, out):
        if isinstance(out, dict):
            return out
        if not isinstance(out, (tuple, list)):
            return {"logits": out}
        features = out[1] if len(out) > 1 else None
        return {"logits": out[0]} if features is None else {"logits": out[0], "features": features}

    @torch.no_grad()
    def collect_outputs(self, loader, split):
        """Run ``model_inference`` over ``loader``: concatenated per-row tensors ``logits``, ``labels``,
        ``index`` and whatever else it returns (``features``, ...). Under DDP the ranks' outputs are
        gathered and de-duplicated by ``index`` (the distributed sampler pads with repeats)."""
        chunks = defaultdict(list)
        for batch in loader:
            input, label = self.parse_batch_test(batch)
            out = self._as_output_dict(self.model_inference(input))
            for k, v in out.items():
                if torch.is_tensor(v):
                    chunks[k].append(v.detach().float().cpu())
            chunks["labels"].append(torch.as_tensor(label).cpu())
            chunks["index"].append(torch.as_tensor(batch["index"]).cpu())
        outputs = {k: torch.cat(v) for k, v in chunks.items()}
        return gather_outputs(outputs)

    def apply_posthoc(self, outputs):
        """Hook for post-hoc calibration of the collected logits (default: none)."""
        return outputs["logits"]

    def _eval_loader(self, split):
        if split == "val" and self.val_loader is not None:
            return self.val_loader
        if split == "train":
            return self.train_loader_x
        return self.test_loader

    @torch.no_grad()
    def test(self, split=None):
        """Evaluate on ``split`` (default ``TEST.SPLIT``); returns the first metric. The global RNG
        states are left as they were: training after a validation does not depend on whether its
        image features came from the cache or from a DataLoader."""
        with preserve_rng():
            return self._test(split)

    def _test(self, split):
        self.set_model_mode("eval")
        self.evaluator.reset()
        split = split or self.cfg.TEST.SPLIT
        loader = self._eval_loader(split)
        if loader is None:
            raise RuntimeError(f"Dataset {self.cfg.DATASET.NAME} has no {split} split to evaluate")
        self.logger.info(f"Evaluate on the *{split}* set")
        self.before_evaluation(split)
        try:
            outputs = self.collect_outputs(loader, split)
            logits = self.apply_posthoc(outputs)
            self.evaluator.process(logits, outputs["labels"], outputs.get("features"))
            results = self.evaluator.evaluate()
        finally:
            self.after_evaluation()
        self.last_results[split] = results
        self.last_outputs = outputs
        self.last_scores = logits
        return list(results.values())[0]

    def get_current_lr(self, names=None):
        name = self.get_model_names(names)[0]
        return self._optims[name].param_groups[0]["lr"]


def gather_outputs(outputs):
    """All-gather per-row tensors across DDP ranks and drop padded duplicates."""
    if not is_distributed():
        return outputs
    gathered = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, outputs)
    merged = {k: torch.cat([g[k] for g in gathered]) for k in outputs}
    sel = torch.as_tensor(np.unique(merged["index"].numpy(), return_index=True)[1])  # first of each index
    return {k: v[sel] for k, v in merged.items()}


class TrainerX(SimpleTrainer):
    """Trainer for labelled data (``train_loader_x``)."""

    def run_epoch(self):
        self.set_model_mode("train")
        losses = self.epoch_meters = MetricMeter()
        batch_time, data_time = AverageMeter(), AverageMeter()
        loader = self.train_loader_x
        if loader is None:
            raise RuntimeError(f"Dataset {self.cfg.DATASET.NAME} has no training data")
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(self.epoch)
        self.num_batches = len(loader)
        end = time.time()
        for self.batch_idx, batch in enumerate(loader):
            fault_point("batch")
            data_time.update(time.time() - end)
            loss_summary = self.forward_backward(batch)
            batch_time.update(time.time() - end)
            losses.update(loss_summary)
            freq, done = self.cfg.TRAIN.PRINT_FREQ, self.batch_idx + 1
            if done % freq == 0 or self.num_batches < freq and done == self.num_batches:
                remain = self.num_batches - done + (self.max_epoch - self.epoch - 1) * self.num_batches
                eta = str(datetime.timedelta(seconds=int(batch_time.avg * remain)))
                self.logger.info(
                    f"epoch [{self.epoch + 1}/{self.max_epoch}] batch [{self.batch_idx + 1}/{self.num_batches}] "
                    f"time {batch_time.val:.3f} ({batch_time.avg:.3f}) data {data_time.val:.3f} ({data_time.avg:.3f}) "
                    f"{losses} lr {self.get_current_lr():.4e} eta {eta}")
            end = time.time()

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)
