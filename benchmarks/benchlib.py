"""What the benchmarks share: the repository on ``sys.path``, best-of timing, random-noise PNGs served
by a synthetic dataset, and the config and flags of a CLIP trainer on them (benchmark only)."""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
_SPEC = {}


def _sync():
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()


def best_time(fn, repeats=1, warmup=False):
    """``(best wall time of repeats calls, the last call's value)``; ``warmup``: one untimed call first.
    CUDA is synchronised around each call when torch is loaded and a GPU is visible."""
    if warmup:
        fn()
    best, value = float("inf"), None
    for _ in range(repeats):
        _sync()
        t = time.perf_counter()
        value = fn()
        _sync()
        best = min(best, time.perf_counter() - t)
    return best, value


def write_images(folder, n_classes, n_images, size, seed=0):
    """``n_images`` random PNGs of ``size`` px in the new ``folder``, as Datums of classes ``i % n_classes``."""
    import numpy as np
    from PIL import Image

    from cpt.engine.data import Datum

    os.makedirs(folder)
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n_images):
        path = os.path.join(folder, f"{i:05d}.png")
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
        items.append(Datum(path, i % n_classes, 0, f"class {i % n_classes}"))
    return items


def serve(items, names, n_train=None):
    """Make the dataset ``BenchSynthetic`` (registered on first use) serve ``items`` over the class
    ``names``: the first ``n_train`` items (all when None) to train, every item to test."""
    from cpt.engine.data import DATASET_REGISTRY, DatasetBase

    if "BenchSynthetic" not in DATASET_REGISTRY:
        @DATASET_REGISTRY.register()
        class BenchSynthetic(DatasetBase):
            def __init__(self, cfg):
                items = _SPEC["items"]
                super().__init__(train_x=items[:_SPEC["n_train"]], val=[], test=items, classnames=_SPEC["names"])
    _SPEC.update(items=items, names=names, n_train=n_train)


def add_run_flags(p):
    """The device, precision, threads and data-loading flags of the trainer benchmarks."""
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--prec", default="fp32", choices=["fp32", "fp16", "bf16", "amp"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=0, help="DATALOADER.NUM_WORKERS")
    p.add_argument("--pin-memory", action="store_true", help="DATALOADER.PIN_MEMORY (CUDA data loading)")


def trainer_cfg(args, trainer, node, backbone, pretrained, size, out, cache_dir):
    """Config of ``trainer`` (its ``TRAINER.<node>``) on ``BenchSynthetic`` with the run flags of ``args``."""
    from cpt.engine.config import get_cfg_default
    from cpt.trainers.config import extend_cfg

    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.DATASET.NAME = "BenchSynthetic"
    cfg.MODEL.BACKBONE.NAME = backbone
    cfg.MODEL.BACKBONE.PRETRAINED = pretrained
    cfg.INPUT.SIZE = (size, size)
    cfg.INPUT.TRANSFORMS = ("normalize",)
    cfg.DATALOADER.NUM_WORKERS = args.workers
    cfg.DATALOADER.PIN_MEMORY = args.pin_memory
    cfg.TRAINER.NAME = trainer
    cfg.TRAINER[node].PREC = args.prec
    cfg.TEST.RELIABILITY_DIAGRAM = False
    cfg.CACHE_DIR = cache_dir
    cfg.OUTPUT_DIR = out
    cfg.USE_CUDA = args.device == "cuda"
    return cfg
