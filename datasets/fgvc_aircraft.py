"""FGVC-Aircraft (CoOp layout): 100 variants, base/new 50/50.

Always the official split: ``images_variant_{train,val,test}.txt`` (lines
``<image id> <variant name>``), class list and order from ``variants.txt``.
"""
import os

from ..engine.data import DATASET_REGISTRY, Datum
from .common import Benchmark, read_lines
from .splits import finish_single_label


@DATASET_REGISTRY.register()
class FGVCAircraft(Benchmark):
    dataset_dir = "fgvc_aircraft"
    LAYOUT = """\
fgvc_aircraft/                     (the contents of fgvc-aircraft-2013b/data/)
  images/<image id>.jpg ...
  variants.txt
  images_variant_train.txt, images_variant_val.txt, images_variant_test.txt"""

    def load(self, cfg, root, ddir):
        classnames = read_lines(self.require_file(os.path.join(ddir, "variants.txt"), "variant list"))
        cname2lab = {c: i for i, c in enumerate(classnames)}
        splits = {}
        for split in ("train", "val", "test"):
            path = self.require_file(os.path.join(ddir, f"images_variant_{split}.txt"),
                                     "official split list (no other way to build the split)")
            items = []
            for i, line in enumerate(read_lines(path)):
                parts = line.split(" ", 1)
                if len(parts) != 2 or parts[1] not in cname2lab:
                    self.fail(f"{path} line {i + 1}: expected '<image id> <variant from variants.txt>', got {line!r}")
                items.append(Datum(os.path.join(ddir, "images", parts[0] + ".jpg"), cname2lab[parts[1]], 0, parts[1]))
            splits[split] = items
        s = self.checked(cfg, splits, "images_variant_*.txt")
        return finish_single_label(cfg, self.NAME, s["train"], s["val"], s["test"], classnames, dataset_dir=ddir)
