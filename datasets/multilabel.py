"""Multi-label benchmarks: the base class (captions for TaI-DPT's text training, finishing)
and the readers they share (multi-hot vectors, long-tail id lists)."""
import itertools
import json
import os
import pickle

import numpy as np

from ..engine.data.datasets import apply_fewshot_and_subsample, paused_gc
from .captions import CaptionLabels
from .common import Benchmark, DatasetLayoutError, first_existing, read_lines


def multihot(num_classes, positives=(), unknown=()):
    """int8 vector: 1 at ``positives``, -1 at ``unknown``, 0 elsewhere."""
    v = np.zeros(num_classes, dtype=np.int8)
    v[list(unknown)] = -1
    v[list(positives)] = 1
    return v


class MultiLabelBenchmark(Benchmark, CaptionLabels):
    """A multi-label benchmark with optional captions for text-only training (TaI-DPT): ``captions()``
    is ``[(caption, multi-hot over self.classnames), ...]`` of the COCO captions file's captions that
    name a class (``datasets/captions.py``), the first ``limit`` (``DATASET.NUM_CAPTIONS``) when > 0."""

    @property
    def caption_files(self):
        ann = os.path.join(self.root, "coco", "annotations")
        return os.path.join(ann, "captions_train2017.json"), os.path.join(ann, "captions_train2014.json")

    def check_captions(self, cfg):
        """Fail early when ``DATASET.TRAIN_SOURCE`` is captions and no captions file exists."""
        if str(cfg.DATASET.get("TRAIN_SOURCE", "images")) == "captions" and first_existing(self.caption_files) is None:
            self.fail(f"DATASET.TRAIN_SOURCE is 'captions' but no captions file exists "
                      f"({', '.join(self.caption_files)})")

    def finish(self, cfg, splits, classnames, source, groups_of=None):
        """Image check, long-tail ``groups_of(train)``, few-shot (K images per class, engine rule)
        and the base/new column cut; the ``DatasetBase`` kwargs."""
        s = self.checked(cfg, splits, source)
        train, test = s.get("train", []), s["test"]
        groups = groups_of(train) if groups_of else None
        with paused_gc():
            train, val, test, classnames = apply_fewshot_and_subsample(cfg, self.NAME, train, [], test, classnames)
        return dict(train_x=train, val=val, test=test, classnames=classnames, groups=groups)

    def captions(self, limit=0):
        path = first_existing(self.caption_files)
        if path is None:
            raise DatasetLayoutError(f"{type(self).__name__}: no captions file; looked for "
                                     f"{', '.join(self.caption_files)}")
        with open(path, "r") as f:
            anns = json.load(f)["annotations"]
        matcher = self.caption_matcher(self.classnames)
        labelled = ((a["caption"].strip(), matcher(a["caption"])) for a in anns)
        return list(itertools.islice(((cap, v) for cap, v in labelled if v.any()), int(limit or 0) or None))

    def read_id_list(self, folder, as_int=False):
        """Image ids of a long-tail list: ``<folder>/img_id.txt`` (one id per line) or ``img_id.pkl`` (the
        long-tailed works' release, a pickled sequence; only load files you trust). Order is kept (a set
        is sorted); duplicates fail."""
        txt, pkl = os.path.join(folder, "img_id.txt"), os.path.join(folder, "img_id.pkl")
        if os.path.isfile(txt):
            ids, path = [ln.split()[0] for ln in read_lines(txt)], txt
        elif os.path.isfile(pkl):
            with open(pkl, "rb") as f:
                obj = pickle.load(f)
            if isinstance(obj, dict) and len(obj) == 1:
                obj = next(iter(obj.values()))
            ids = sorted(obj) if isinstance(obj, (set, frozenset)) else list(np.asarray(obj).reshape(-1).tolist())
            path = pkl
        else:
            self.fail(f"missing long-tail image-id list: {txt} (or {pkl})")
        try:
            ids = [int(i) for i in ids] if as_int else [str(i) for i in ids]
        except ValueError as e:
            self.fail(f"{path}: image ids must be integers ({e})")
        if len(set(ids)) != len(ids):
            self.fail(f"{path} lists {len(ids) - len(set(ids))} duplicate image id(s)")
        if not ids:
            self.fail(f"{path} is empty")
        return ids
