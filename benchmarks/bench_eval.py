"""Evaluation cost of a model of the catalog's default method (CoOp): text features once per
evaluation vs once per test batch, a second evaluation with vs without the frozen image-feature
cache (``TEST.CACHE_FEATURES``), and a sweep of ``--sweep`` runs (a new trainer each, seeds 1..N, as
a sweep over seeds and calibrators) sharing one cache: the first run's evaluation time and the mean
of the others.

Two backbones, on the CPU or ``--device cuda``: the world's tiny CLIP (its checkpoint when present,
else random weights) and a random ViT-B/16-sized CLIP (no download), on ``--batches`` test batches
of ``--batch-size`` random PNGs over ``--classes`` classes. Prints the times and their ratios
measured in this one run.

    python benchmarks/bench_eval.py [--classes 100] [--batches 3] [--batch-size 16] [--sweep 5] ...
"""
import argparse
import os
import tempfile

import torch

from benchlib import add_run_flags, best_time, serve, trainer_cfg, write_images
from cpt import trainers  # noqa: F401  (registers the trainers)
from cpt.cli import catalog
from cpt.engine.trainer import TRAINER_REGISTRY, build_trainer


def bench(label, backbone, pretrained, size, args, tmp):
    slug = "".join(ch if ch.isalnum() else "_" for ch in label)
    serve(write_images(os.path.join(tmp, slug), args.classes, args.batches * args.batch_size, size),
          [f"class {i}" for i in range(args.classes)], n_train=args.classes)
    trainer = catalog.get_method(catalog.default_method()).trainer  # a learned shared context
    node = TRAINER_REGISTRY.get(trainer).cfg_node
    cfg = trainer_cfg(args, trainer, node, backbone, pretrained, size, os.path.join(tmp, "out-" + slug),
                      os.path.join(tmp, "cache"))
    cfg.DATALOADER.TEST.BATCH_SIZE = args.batch_size
    cfg.TRAINER[node].CTX_INIT = "a photo of a"
    cfg.TEST.CACHE_FEATURES = False
    torch.manual_seed(0)
    t = build_trainer(cfg)
    t.test()  # warm-up (allocations, lazy init)
    once = best_time(t.test, args.repeats)[0]

    # Text features once per batch: the per-evaluation text cache is left empty.
    original = t.before_evaluation
    t.before_evaluation = lambda split: setattr(t.text_head, "cache", {})
    per_batch = best_time(t.test, args.repeats)[0]
    t.before_evaluation = original

    t.cfg.defrost()
    t.cfg.TEST.CACHE_FEATURES = True
    first = best_time(t.test)[0]          # computes and writes the cache
    second = best_time(t.test, args.repeats)[0]  # reads it
    t.cfg.TEST.CACHE_FEATURES = False
    print(f"\n[{label}] {t.clip.describe()}")
    print(f"  {args.classes} classes, {args.batches} batches x {args.batch_size} images of {size} px, "
          f"device {t.device}, threads {torch.get_num_threads()}, best of {args.repeats}")
    print(f"  text features once per evaluation : {once:8.3f} s")
    print(f"  text features once per batch      : {per_batch:8.3f} s   ratio {per_batch / once:6.2f}x")
    print(f"  first evaluation writing the cache: {first:8.3f} s")
    print(f"  second evaluation, cache read     : {second:8.3f} s   speed-up vs no cache {once / second:6.2f}x")
    if args.sweep > 1:
        sweep(cfg, args, os.path.join(tmp, "sweep-cache-" + slug))


def sweep(base_cfg, args, cache_dir):
    """``args.sweep`` runs sharing a fresh cache: each builds its trainer (seed i, same random CLIP)
    and evaluates once; the evaluation times of the first and of the others."""
    times = []
    for i in range(args.sweep):
        cfg = base_cfg.clone()
        cfg.defrost()
        cfg.CACHE_DIR = cache_dir
        cfg.TEST.CACHE_FEATURES = True
        cfg.SEED = i + 1
        torch.manual_seed(0)  # the random backbone: the same weights in every run
        t = build_trainer(cfg)
        torch.manual_seed(i + 1)
        t.learner.ctx.data.normal_(std=0.02)  # each run its own prompt, as seeds would give
        times.append(best_time(t.test)[0])
    rest = sum(times[1:]) / (len(times) - 1)
    print(f"  sweep of {args.sweep} runs sharing the cache: first {times[0]:8.3f} s, mean of the other "
          f"{args.sweep - 1} {rest:8.3f} s   ratio {times[0] / rest:6.2f}x  (all: "
          + ", ".join(f"{x:.3f}" for x in times) + ")")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--batches", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="best of N timings per mode")
    p.add_argument("--skip-vit-b16", action="store_true")
    p.add_argument("--sweep", type=int, default=5, help="runs of the shared-cache sweep (0: none)")
    add_run_flags(p)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from cpt.trainers.clip import world as world_clip
    with tempfile.TemporaryDirectory() as tmp:
        has_world = os.path.isfile(world_clip.DEFAULT_CHECKPOINT)
        bench("world-tiny" + ("" if has_world else " (random)"), "world-tiny", has_world, 32, args, tmp)
        if not args.skip_vit_b16:
            bench("ViT-B/16 (random)", "ViT-B/16", False, 224, args, tmp)


if __name__ == "__main__":
    main()
