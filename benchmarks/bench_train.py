"""Time per training step of the prompt learners of the method catalog (those that train on
single-label data: CoOp, CoCoOp, KgCoOp and MaPLe) with the short text path on and off
(``MODEL.BACKBONE.SHORT_TEXT``; off is what the upstream forks do: every prompt at the full
context of 77 tokens).

A randomly initialised ViT-B/16-sized CLIP (no download) on ``--batch-size`` random PNGs over
``--classes`` classes, read through the trainer's own (deterministic) training loader, so a step is
the real ``forward_backward``: batch to device, forward, loss, backward, optimizer step. SGD with
learning rate 0 keeps the parameters, so the two paths' losses can be compared. Both paths run on
one trainer, interleaved (on, off, ...) after ``--warmup`` steps each; per setting the script prints
the median step time of each path, their ratio and the max difference of the losses.

    python benchmarks/bench_train.py [--classes 10 100 1000] [--trainers CoOp MaPLe] [--device cuda] ...

A method whose prompts depend on the image (CoCoOp) encodes every class prompt per image, so it runs
at ``--per-image-batch-size`` (CoCoOp's published batch size is 1). ``--repeats-at CLASSES N``
lowers the repeats for large settings.
"""
import argparse
import os
import statistics
import tempfile

import torch

from benchlib import add_run_flags, best_time, serve, trainer_cfg, write_images
from cpt import trainers  # noqa: F401  (registers the trainers)
from cpt.cli import catalog
from cpt.engine.trainer import TRAINER_REGISTRY, build_trainer


def prompt_trainers():
    """The trainers of the catalog's methods that learn prompts on single-label data."""
    return [m.trainer for _, m in catalog.METHODS.items() if not (m.eval_only or m.multilabel)]


def class_names(n):
    """Distinct multi-token names like ImageNet's (``"red fox 12"``)."""
    words = ["red", "fox", "garden", "snake", "great", "white", "shark", "tabby", "cat", "sports", "car"]
    return [f"{words[i % len(words)]} {words[(i // len(words)) % len(words)]} {i}" for i in range(n)]


def make_cfg(args, trainer, batch_size, out):
    node = TRAINER_REGISTRY.get(trainer).cfg_node
    cfg = trainer_cfg(args, trainer, node, args.backbone, False, args.size, out, os.path.join(out, "cache"))
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = batch_size
    cfg.OPTIM.NAME = "sgd"
    cfg.OPTIM.LR = 0.0  # the step runs, the parameters stay: both paths see the same model
    cfg.OPTIM.WEIGHT_DECAY = 0.0
    cfg.OPTIM.MAX_EPOCH = 1
    node = cfg.TRAINER[node]
    if "PROMPT_DEPTH" not in node:  # a context learner; deep prompts keep their own context
        node.N_CTX, node.CTX_INIT = args.n_ctx, ""
    elif args.backbone.lower().startswith("world"):
        node.PROMPT_DEPTH = 3  # the world's tiny towers have 4 text layers
    cfg.TEST.NO_TEST = True
    cfg.TEST.CACHE_FEATURES = False
    cfg.SEED = 1
    return cfg


def batches(loader):
    while True:
        yield from loader


def bench_one(args, trainer, n_classes, repeats, tmp):
    per_image = not TRAINER_REGISTRY.get(trainer).image_independent_text
    bs = args.per_image_batch_size if per_image else args.batch_size
    images = write_images(os.path.join(tmp, f"img-{trainer}-{n_classes}"), n_classes, bs, args.size)
    serve(images, class_names(n_classes))
    torch.manual_seed(0)
    t = build_trainer(make_cfg(args, trainer, bs, os.path.join(tmp, f"out-{trainer}-{n_classes}")))
    t.set_model_mode("train")
    t.batch_idx, t.num_batches, t.epoch = 0, 10 ** 9, 0
    data = batches(t.train_loader_x)
    pl = t.learner
    deep = "PROMPT_DEPTH" in t.tcfg  # deep prompts replace positions 1..n_ctx in every layer
    keep = t.clip.text_keep_length(pl.tokenized_prompts, 1 + pl.n_ctx if deep else 0)

    def step(on):
        t.clip.short_text = on
        batch = next(data)
        dt, logs = best_time(lambda: t.forward_backward(batch))
        return dt, logs["loss"]

    for _ in range(args.warmup):  # allocations, lazy init
        step(True), step(False)
    times, losses = {True: [], False: []}, {True: [], False: []}
    for on in [True, False] * repeats:
        dt, loss = step(on)
        times[on].append(dt)
        losses[on].append(loss)
    t.clip.short_text = True
    on, off = statistics.median(times[True]), statistics.median(times[False])
    diff = max(abs(a - b) for a, b in zip(losses[True], losses[False]))
    spread = max(losses[True]) - min(losses[True])
    print(f"{trainer:7s} {n_classes:6d} {bs:5d} {keep:3d}/{t.clip.context_length:<3d} {repeats:3d}  "
          f"{on:9.3f} {off:9.3f}  {off / on:6.2f}x  {diff:9.2e} {spread:9.2e}", flush=True)
    t = None  # free the trainer before the next setting
    return off / on


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--trainers", nargs="+", default=prompt_trainers(), choices=prompt_trainers())
    p.add_argument("--repeats", type=int, default=3, help="timed steps per path and setting")
    p.add_argument("--repeats-at", type=int, nargs=2, action="append", default=[], metavar=("CLASSES", "N"),
                   help="use N repeats at CLASSES classes (may be given several times)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per path first")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--per-image-batch-size", type=int, default=1,
                   help="batch size of the methods whose prompts depend on the image")
    p.add_argument("--n-ctx", type=int, default=16, help="context tokens of the context learners (deep prompts: "
                   "their own)")
    add_run_flags(p)
    p.add_argument("--backbone", default="ViT-B/16")
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is visible")
    torch.set_num_threads(args.threads)
    repeats_at = {c: n for c, n in args.repeats_at}
    print(f"{args.backbone} (random weights), device {args.device}, precision {args.prec}, threads "
          f"{torch.get_num_threads()}, batch {args.batch_size} (per-image prompts {args.per_image_batch_size}), "
          f"workers {args.workers}, pin_memory {args.pin_memory}")
    print("trainer classes batch kept/ctx reps  short[s]   full[s]   ratio  max|dloss|  loss-spread")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.classes:
            for name in args.trainers:
                bench_one(args, name, n, repeats_at.get(n, args.repeats), tmp)


if __name__ == "__main__":
    main()
