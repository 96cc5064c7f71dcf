"""Evaluation cost of a CoOp model: text features once per evaluation vs once per test batch, and
a second evaluation with vs without the frozen image-feature cache (``TEST.CACHE_FEATURES``).

Runs on the CPU (or the GPU with --device cuda) for two backbones: the world's tiny CLIP (its
checkpoint when present, else random weights) and a randomly initialised ViT-B/16-sized CLIP
(``MODEL.BACKBONE.PRETRAINED False``; no download). Images are random PNGs of a synthetic dataset
with ``--classes`` classes; ``--batches`` test batches of ``--batch-size``. Prints the times and
their ratios measured in this one run.

    python benchmarks/bench_eval.py [--classes 100] [--batches 3] [--batch-size 16] [--threads 2] [--repeats 3]
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cpt.engine.config import get_cfg_default  # noqa: E402
from cpt.engine.data import DATASET_REGISTRY, DatasetBase, Datum  # noqa: E402
from cpt.engine.trainer import build_trainer  # noqa: E402
from cpt.trainers.config import extend_cfg  # noqa: E402
from cpt import trainers  # noqa: E402,F401  (registers CoOp)

_SPEC = {}


@DATASET_REGISTRY.register()
class BenchSynthetic(DatasetBase):
    """Random-noise PNGs written by :func:`write_images` (benchmark only)."""

    def __init__(self, cfg):
        items, names = _SPEC["items"], _SPEC["names"]
        super().__init__(train_x=items[:len(names)], val=[], test=items, classnames=names)


def write_images(folder, n_classes, n_images, size, seed=0):
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n_images):
        path = os.path.join(folder, f"{i:05d}.png")
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
        items.append(Datum(path, i % n_classes, 0, f"class {i % n_classes}"))
    return items


def make_cfg(backbone, pretrained, size, batch_size, cache_dir, device, out):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.DATASET.NAME = "BenchSynthetic"
    cfg.MODEL.BACKBONE.NAME = backbone
    cfg.MODEL.BACKBONE.PRETRAINED = pretrained
    cfg.INPUT.SIZE = (size, size)
    cfg.INPUT.TRANSFORMS = ("normalize",)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TEST.BATCH_SIZE = batch_size
    cfg.TRAINER.NAME = "CoOp"
    cfg.TRAINER.COOP.CTX_INIT = "a photo of a"
    cfg.TRAINER.COOP.PREC = "fp32"
    cfg.TEST.RELIABILITY_DIAGRAM = False
    cfg.CACHE_DIR = cache_dir
    cfg.OUTPUT_DIR = out
    cfg.USE_CUDA = device == "cuda"
    return cfg


def timed(fn, repeats=1):
    """Best of ``repeats`` wall times (the machine may be shared)."""
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def bench(label, backbone, pretrained, size, args, tmp):
    n_images = args.batches * args.batch_size
    slug = "".join(ch if ch.isalnum() else "_" for ch in label)
    folder = os.path.join(tmp, slug)
    os.makedirs(folder)
    _SPEC["names"] = [f"class {i}" for i in range(args.classes)]
    _SPEC["items"] = write_images(folder, args.classes, n_images, size)
    cfg = make_cfg(backbone, pretrained, size, args.batch_size, os.path.join(tmp, "cache"), args.device,
                   os.path.join(tmp, "out-" + slug))
    torch.manual_seed(0)
    t = build_trainer(cfg)
    t.test()  # warm-up (allocations, lazy init)
    once = timed(t.test, args.repeats)

    # Text features once per batch: the per-evaluation text cache is left empty.
    original = t.before_evaluation
    t.before_evaluation = lambda split: setattr(t, "_eval_cache", {})
    per_batch = timed(t.test, args.repeats)
    t.before_evaluation = original

    t.cfg.defrost()
    t.cfg.TEST.CACHE_FEATURES = True
    first = timed(t.test)          # computes and writes the cache
    second = timed(t.test, args.repeats)  # reads it
    t.cfg.TEST.CACHE_FEATURES = False
    print(f"\n[{label}] {t.clip.describe()}")
    print(f"  {args.classes} classes, {args.batches} batches x {args.batch_size} images of {size} px, "
          f"device {t.device}, threads {torch.get_num_threads()}, best of {args.repeats}")
    print(f"  text features once per evaluation : {once:8.3f} s")
    print(f"  text features once per batch      : {per_batch:8.3f} s   ratio {per_batch / once:6.2f}x")
    print(f"  first evaluation writing the cache: {first:8.3f} s")
    print(f"  second evaluation, cache read     : {second:8.3f} s   speed-up vs no cache {once / second:6.2f}x")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--batches", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="best of N timings per mode")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--skip-vit-b16", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from cpt.trainers import world_clip
    with tempfile.TemporaryDirectory() as tmp:
        has_world = os.path.isfile(world_clip.DEFAULT_CHECKPOINT)
        bench("world-tiny" + ("" if has_world else " (random)"), "world-tiny", has_world, 32, args, tmp)
        if not args.skip_vit_b16:
            bench("ViT-B/16 (random)", "ViT-B/16", False, 224, args, tmp)


if __name__ == "__main__":
    main()
