"""Check a dataset folder: ``python -m cpt.datasets.check --root ROOT --dataset NAME [--json]``.

``NAME`` is a registry name (``OxfordPets``) or a dataset yaml stem (``oxford_pets``). Builds the
dataset as training does (all shots, all classes), decodes ``--open`` images per split and prints a
summary per split (README, *Datasets*); ``--json``: one object with ``train``, ``val``, ``test`` (item
counts), ``num_classes``, ``classnames`` (and ``groups``). On a problem: the error on stderr, status 1.
"""
import argparse
import json
import os
import sys

import numpy as np

from ..engine.config import resource_path

CONFIG_DIR = resource_path("configs", "datasets")


def _yaml_name(path):
    from yacs.config import CfgNode

    with open(path, "r") as f:
        return CfgNode.load_cfg(f).get("DATASET", {}).get("NAME", "")


def resolve(name):
    """``(registry name, dataset yaml path or None)`` for a registry name or a yaml stem; exact
    names first, then case-insensitive (a registry name before a stem)."""
    from .. import datasets  # noqa: F401  (registers every dataset)
    from ..engine.data import DATASET_REGISTRY

    yamls = {f[:-5]: os.path.join(CONFIG_DIR, f) for f in sorted(os.listdir(CONFIG_DIR)) if f.endswith(".yaml")}
    registered = DATASET_REGISTRY.registered_names()
    if name not in yamls and name not in registered:
        lowered = {k.lower(): k for k in list(yamls) + sorted(registered)}
        if name.lower() not in lowered:
            known = sorted(registered) + sorted(yamls)
            raise KeyError(f"unknown dataset {name!r}; use a registry name or a configs/datasets stem: "
                           f"{', '.join(known)}")
        name = lowered[name.lower()]
    if name in yamls:
        return _yaml_name(yamls[name]) or name, yamls[name]
    return name, next((path for path in yamls.values() if _yaml_name(path) == name), None)


def build(root, name, cache_dir="", opts=()):
    from .. import datasets
    from ..engine.config import get_cfg_default
    from ..engine.data import build_dataset

    reg, yaml_path = resolve(name)
    cfg = datasets.extend_cfg(get_cfg_default())  # the keys the datasets declare
    if yaml_path:
        cfg.merge_from_file(yaml_path)
    cfg.DATASET.NAME = reg
    cfg.DATASET.ROOT = root
    cfg.DATASET.NUM_SHOTS = -1
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"
    if cache_dir:
        cfg.CACHE_DIR = cache_dir
    cfg.merge_from_list(list(opts))
    return build_dataset(cfg)


def _classes_present(items):
    if not items:
        return []
    if items[0].is_multilabel:
        labels = np.stack([np.asarray(x.label) for x in items])
        return [int(c) for c in np.flatnonzero((labels == 1).any(0))]
    return sorted({int(x.label) for x in items})


def summary(ds):
    out = {"train": len(ds.train_x), "val": len(ds.val), "test": len(ds.test), "num_classes": ds.num_classes,
           "classnames": list(ds.classnames)}
    if getattr(ds, "groups", None):
        out["groups"] = {k: list(v) for k, v in ds.groups.items()}
    return out


def open_some(ds, per_split):
    """Decode up to ``per_split`` images per split, spread over it (first and last first)."""
    from ..engine.utils import read_image

    for items in (ds.train_x, ds.val, ds.test):
        if items and per_split > 0:
            for i in sorted({int(round(i)) for i in np.linspace(0, len(items) - 1, per_split)}):
                read_image(items[i].impath)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m cpt.datasets.check", description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="folder holding the datasets (DATASET.ROOT)")
    p.add_argument("--dataset", required=True, help="registry name (OxfordPets) or yaml stem (oxford_pets)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--cache-dir", default="", help="CACHE_DIR (built splits, parsed annotations)")
    p.add_argument("--open", type=int, default=2, help="images to decode per split (default 2; 0: none)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="extra KEY VALUE config pairs")
    args = p.parse_args(argv)
    from .common import preview

    try:
        ds = build(args.root, args.dataset, args.cache_dir, args.opts)
        open_some(ds, args.open)
    except (OSError, KeyError, ValueError) as e:  # a DatasetLayoutError is an OSError
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"error: {msg}", file=sys.stderr)
        return 1
    s = summary(ds)
    if args.json:
        print(json.dumps(s))
        return 0
    kind = "multi-label" if ds.is_multilabel else "single-label"
    print(f"{args.dataset}: {ds.num_classes} classes ({kind}) under {os.path.abspath(args.root)}")
    for split, items in (("train", ds.train_x), ("val", ds.val), ("test", ds.test)):
        present = _classes_present(items)
        same = "  (val is the test set)" if split == "val" and items and items is ds.test else ""
        print(f"  {split:<5} {len(items):>9,} items  {len(present):>5} classes  "
              f"{preview([ds.classnames[c] for c in present])}{same}")
    for g, idx in s.get("groups", {}).items():
        print(f"  group {g}: {len(idx)} class(es)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
