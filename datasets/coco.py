"""MS-COCO multi-label benchmarks: COCO2014, COCO2017 (test only) and COCO-LT.

Classes are the instances file's categories in category-id order (80; names as in the file, e.g.
"traffic light"), the same for every COCO benchmark, so a prompt trained on one is evaluated on
another with ``--eval-only --model-dir``. An image is positive for every category it has an instance
of (crowd included), negative for the rest. A parsed instances file is cached (``common.cached_parse``),
so a 450 MB file is read once.
"""
import json
import os

from ..engine.data import DATASET_REGISTRY, Datum
from .common import cached_parse, fail, finish_test_only, lt_groups, preview
from .multilabel import MultiLabelBenchmark, multihot


def read_coco_instances(path, name, layout):
    """COCO instances JSON -> ``{"classnames": [...], "images": [[id, file_name, [class idx, ...]], ...]}``
    (images in the file's order)."""
    try:
        with open(path, "r") as f:
            blob = json.load(f)
        cats = sorted(blob["categories"], key=lambda c: c["id"])
        cat2idx = {c["id"]: i for i, c in enumerate(cats)}
        pos = {}
        for a in blob.get("annotations", []):
            pos.setdefault(a["image_id"], set()).add(cat2idx[a["category_id"]])
        images = [[im["id"], im["file_name"], sorted(pos.get(im["id"], ()))] for im in blob["images"]]
    except (KeyError, TypeError, ValueError) as e:
        fail(name, f"{path} is not a COCO instances file ({type(e).__name__}: {e})", layout)
    return {"classnames": [c["name"] for c in cats], "images": images}


class _COCO(MultiLabelBenchmark):
    synonyms_file = "synonyms_coco.json"
    dataset_dir = "coco"

    def split(self, cfg, ddir, folder, keep_ids=None):
        """Items of a COCO split (``folder`` = train2014, val2014, ...) and the class names: the images of
        ``keep_ids`` in that order, else all with at least one instance in the file's order."""
        ann = self.require_file(os.path.join(ddir, "annotations", f"instances_{folder}.json"), "COCO instances file")
        self.require_dir(os.path.join(ddir, folder), "image folder")
        data = cached_parse(cfg, self.NAME, ddir, f"instances_{folder}", [ann],
                            lambda: read_coco_instances(ann, self.NAME, self.LAYOUT))
        images = data["images"]
        if keep_ids is not None:
            by_id = {im[0]: im for im in images}
            missing = [i for i in keep_ids if i not in by_id]
            if missing:
                self.fail(f"{len(missing)} image id(s) of the id list are not in {ann}: {preview(missing)}")
            images = [by_id[i] for i in keep_ids]
        else:
            images = [im for im in images if im[2]]
        n = len(data["classnames"])
        return [Datum(os.path.join(ddir, folder, fn), multihot(n, pos), 0, "") for _, fn, pos in images], \
            data["classnames"]

    def train_test(self, cfg, ddir, train_folder, test_folder, keep_ids=None):
        train, classnames = self.split(cfg, ddir, train_folder, keep_ids)
        test, test_names = self.split(cfg, ddir, test_folder)
        if test_names != classnames:
            self.fail(f"instances_{train_folder}.json and instances_{test_folder}.json have different categories")
        return {"train": train, "test": test}, classnames


@DATASET_REGISTRY.register()
class COCO2014(_COCO):
    """COCO 2014 (TaI-DPT / DualCoOp protocol): train2014 / val2014 images with at least one
    instance (82,081 / 40,137); no val split; base/new 40/40."""

    LAYOUT = """\
coco/
  annotations/instances_train2014.json, annotations/instances_val2014.json
  annotations/captions_train2017.json   (or captions_train2014.json; for caption training only)
  train2014/COCO_train2014_000000000009.jpg ...
  val2014/COCO_val2014_000000000042.jpg ..."""

    def load(self, cfg, root, ddir):
        self.check_captions(cfg)
        splits, classnames = self.train_test(cfg, ddir, "train2014", "val2014")
        return self.finish(cfg, splits, classnames, "the instances files")


@DATASET_REGISTRY.register()
class COCO2017(_COCO):
    """COCO 2017 val as a test-only set (domain generalisation target): the val2017 images with at
    least one instance (4,952); base/new (40/40) applies to the test columns. COCO-LT's test set is
    the same images with the long-tail groups (``COCOLT``)."""

    LAYOUT = """\
coco/
  annotations/instances_val2017.json
  val2017/000000000139.jpg ..."""

    def load(self, cfg, root, ddir):
        test, classnames = self.split(cfg, ddir, "val2017")
        return finish_test_only(cfg, self.checked(cfg, {"test": test}, "instances_val2017.json")["test"], classnames)


@DATASET_REGISTRY.register()
class COCOLT(_COCO):
    """COCO-LT (long-tailed multi-label; Wu et al., ECCV 2020): 80 classes, base/new 40/40.

    Train: the 1,909 COCO-2017-train images of the released id list; test: all val2017 images with at
    least one instance (4,952). ``groups``: head/medium/tail (``common.lt_groups``; 22/33/25 classes).
    """

    LAYOUT = """\
coco/
  annotations/instances_train2017.json, annotations/instances_val2017.json
  train2017/000000000009.jpg ...   val2017/000000000139.jpg ...
  longtail2017/img_id.txt           (one COCO image id per line; or img_id.pkl as released with
                                     the distribution-balanced loss code, appendix/coco/longtail2017/)
  annotations/captions_train2017.json   (only for caption training)"""

    def load(self, cfg, root, ddir):
        self.check_captions(cfg)
        ids = self.read_id_list(os.path.join(ddir, "longtail2017"), as_int=True)
        splits, classnames = self.train_test(cfg, ddir, "train2017", "val2017", keep_ids=ids)
        return self.finish(cfg, splits, classnames, "the id list / instances files",
                           lambda train: lt_groups(train, cfg.DATASET.SUBSAMPLE_CLASSES))
