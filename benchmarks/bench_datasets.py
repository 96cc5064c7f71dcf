"""Construction time of an ImageNet-sized dataset (1.28M train + 50k test entries, paths only).

Writes ``imagenet/classnames.txt`` (1000 classes) and a CoOp-format
``imagenet/split_zhou_ImageNet.json`` into a temporary root, creates (empty) only the image
files that the existence check samples, and times ``build_dataset`` for ImageNet:
all shots, then 16 shots / seed 1 / base classes (few-shot drawn and cached), then the same
again (few-shot read from the cache). No image is opened.

    python benchmarks/bench_datasets.py [--per-class 1281] [--keep DIR]
"""
import argparse
import json
import os
import resource
import shutil
import tempfile
import time

from benchlib import best_time
from cpt import datasets  # noqa: F401
from cpt.datasets import common
from cpt.engine.config import get_cfg_default
from cpt.engine.data import build_dataset


def write_fake_imagenet(root, per_class, n_classes=1000, test_per_class=50):
    d = os.path.join(root, "imagenet")
    os.makedirs(d)
    wnids = [f"n{i:08d}" for i in range(n_classes)]
    with open(os.path.join(d, "classnames.txt"), "w") as f:
        f.writelines(f"{w} class number {i}\n" for i, w in enumerate(wnids))
    split = {"train": [[f"train/{w}/{w}_{j}.JPEG", i, f"class number {i}"] for i, w in enumerate(wnids)
                       for j in range(per_class)],
             "val": [],
             "test": [[f"val/{w}/ILSVRC2012_val_{i:04d}{j:02d}.JPEG", i, f"class number {i}"]
                      for i, w in enumerate(wnids) for j in range(test_per_class)]}
    with open(os.path.join(d, "split_zhou_ImageNet.json"), "w") as f:
        json.dump(split, f, separators=(",", ":"))
    touched = 0
    for key in ("train", "test"):
        rows = split[key]
        for i in common.verification_indices(len(rows)):
            p = os.path.join(d, "images", rows[i][0])
            os.makedirs(os.path.dirname(p), exist_ok=True)
            open(p, "wb").close()
            touched += 1
    return len(split["train"]), len(split["test"]), touched


def timed_build(root, cache, **kw):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = root
    cfg.DATASET.NAME = "ImageNet"
    cfg.CACHE_DIR = cache
    cfg.SEED = kw.get("seed", 1)
    cfg.DATASET.NUM_SHOTS = kw.get("shots", -1)
    cfg.DATASET.SUBSAMPLE_CLASSES = kw.get("subsample", "all")
    return best_time(lambda: build_dataset(cfg))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--per-class", type=int, default=1281)
    p.add_argument("--keep", default="", help="write the fake root here and keep it")
    args = p.parse_args()
    tmp = args.keep or tempfile.mkdtemp(prefix="bench_datasets_")
    try:
        root, cache = os.path.join(tmp, "data"), os.path.join(tmp, "cache")
        t = time.perf_counter()
        n_train, n_test, touched = write_fake_imagenet(root, args.per_class)
        size = os.path.getsize(os.path.join(root, "imagenet", "split_zhou_ImageNet.json")) / 2**20
        print(f"fake split: {n_train:,} train + {n_test:,} test entries ({size:.0f} MiB JSON), "
              f"{touched} sampled files created, written in {time.perf_counter() - t:.1f} s")
        s_all, ds = timed_build(root, cache)
        print(f"build all shots, all classes : {s_all:6.2f} s  ({len(ds.train_x):,} train, {len(ds.test):,} test, "
              f"{ds.num_classes} classes)")
        s_fs, ds = timed_build(root, cache, shots=16, subsample="base")
        print(f"build 16 shots, base (draw)  : {s_fs:6.2f} s  ({len(ds.train_x):,} train, {len(ds.test):,} test, "
              f"{ds.num_classes} classes)")
        s_fs2, ds = timed_build(root, cache, shots=16, subsample="base")
        print(f"build 16 shots, base (cached): {s_fs2:6.2f} s")
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
