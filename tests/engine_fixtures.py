"""A tiny registered dataset and trainer for engine tests (no CLIP involved)."""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from cpt.engine.data import DATASET_REGISTRY, DatasetBase, Datum, apply_fewshot_and_subsample, read_split, save_split
from cpt.engine.optim import build_lr_scheduler, build_optimizer
from cpt.engine.trainer import TRAINER_REGISTRY, TrainerX

CLASSNAMES = ["red", "green", "blue", "yellow", "cyan"]
_COLORS = np.array([[220, 30, 30], [30, 200, 30], [30, 30, 220], [220, 220, 30], [30, 220, 220]])


def write_fixture_tree(root, per_class=(6, 2, 4), size=8, seed=0):
    """``root/fixture/images/<class>/<i>.png`` and ``split_fixture.json`` in CoOp's format."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "fixture")
    items = {"train": [], "val": [], "test": []}
    for label, name in enumerate(CLASSNAMES):
        os.makedirs(os.path.join(base, "images", name), exist_ok=True)
        k = 0
        for split, n in zip(("train", "val", "test"), per_class):
            for _ in range(n):
                pix = np.clip(_COLORS[label] + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
                rel = os.path.join("images", name, f"{k}.png")
                Image.fromarray(pix).save(os.path.join(base, rel))
                items[split].append(Datum(os.path.join(base, rel), label, 0, name))
                k += 1
    save_split(items["train"], items["val"], items["test"], os.path.join(base, "split_fixture.json"), base)
    return base


@DATASET_REGISTRY.register()
class EngineFixture(DatasetBase):
    dataset_dir = "fixture"

    def __init__(self, cfg):
        base = os.path.join(os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT)), self.dataset_dir)
        train, val, test = read_split(os.path.join(base, "split_fixture.json"), base)
        train, val, test, names = apply_fewshot_and_subsample(cfg, "EngineFixture", train, val, test, CLASSNAMES)
        super().__init__(train_x=train, val=val, test=test, classnames=names)


class _Net(nn.Module):
    def __init__(self, in_dim, n_cls):
        super().__init__()
        self.frozen = nn.Linear(in_dim, 16)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(16, n_cls)

    def forward(self, x):
        f = torch.tanh(self.frozen(x.flatten(1)))
        return self.head(f), f


@TRAINER_REGISTRY.register()
class EngineTiny(TrainerX):
    """A linear probe on a frozen random projection; stops on request for resume tests."""

    stop_after_epoch = None  # set to an int to simulate a crash after that epoch

    def build_model(self):
        size = self.cfg.INPUT.SIZE
        self.model = _Net(3 * size[0] * size[1], self.num_classes).to(self.device)
        optim = build_optimizer(self.model, self.cfg.OPTIM)
        sched = build_lr_scheduler(optim, self.cfg.OPTIM)
        self.register_model("model", self.model, optim, sched)
        self.lr_per_epoch = []

    def before_epoch(self):
        self.lr_per_epoch.append(self.get_current_lr())

    def forward_backward(self, batch):
        x, y = self.parse_batch_train(batch)
        logits, _ = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.model_backward_and_update(loss)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return {"loss": loss.item()}

    def after_epoch(self):
        super().after_epoch()
        if EngineTiny.stop_after_epoch is not None and self.epoch + 1 == EngineTiny.stop_after_epoch:
            raise KeyboardInterrupt("simulated crash")

    def model_inference(self, x):
        logits, feats = self.model(x)
        return {"logits": logits, "features": feats}


@TRAINER_REGISTRY.register()
class EngineTinyOther(EngineTiny):
    pass
