"""ImageNet-1k and its test-only variants (CoOp layout).

The class list is ImageNet's ``classnames.txt`` (``<wnid> <name>`` per line; label = line
index, CoOp's file is sorted by wnid); a variant reads it from its own folder, else from
``<root>/imagenet/``. The variants are test only (no few-shot; base/new cuts their test set).
"""
import os

from ..engine.data import DATASET_REGISTRY, apply_fewshot_and_subsample
from .common import Benchmark, finish_test_only, first_existing, preview, read_lines
from .splits import class_subfolders, list_class_folders, split_or_build, stamp_sources


class _ImageNetFamily(Benchmark):
    def read_classnames(self, path):
        """``classnames.txt`` -> ordered dict wnid -> name (file order = label)."""
        self.require_file(path, "class-name list")
        out = {}
        for i, line in enumerate(read_lines(path)):
            parts = line.split(" ", 1)
            if len(parts) != 2:
                self.fail(f"{path} line {i + 1}: expected '<wnid> <class name>', got {line!r}")
            out[parts[0]] = parts[1].strip()
        return out

    def variant_classnames(self, root, ddir):
        """ImageNet's list for a variant: in the variant folder, else in ``<root>/imagenet/``."""
        candidates = [os.path.join(ddir, "classnames.txt"), os.path.join(root, "imagenet", "classnames.txt")]
        path = first_existing(candidates)
        if path is None:
            self.fail(f"missing ImageNet class-name list; looked at {', '.join(candidates)}")
        return self.read_classnames(path)

    def wnid_folders(self, image_dir, names, folders=None):
        """Items of the wnid folders of ``image_dir`` (all of ``names`` unless ``folders``);
        a folder that is not a wnid of ``names`` fails."""
        extra = [f for f in class_subfolders(image_dir) if f not in names]
        if extra:
            self.fail(f"{len(extra)} folder(s) in {image_dir} are not in classnames.txt (ImageNet wnids): "
                      f"{preview(extra)}")
        folders = list(names) if folders is None else folders
        return list_class_folders(image_dir, folders, [names[f] for f in folders], self.NAME, self.LAYOUT)


@DATASET_REGISTRY.register()
class ImageNet(_ImageNetFamily):
    """ImageNet-1k: 1000 classes, base/new 500/500; ``val`` is the test set (as in CoOp).

    Every class must have a non-empty folder in ``images/train`` and ``images/val``. The folder listing
    is saved as a split file in the cache (``val`` empty), keyed by ``classnames.txt`` and the listing of
    both folders (``splits.split_or_build``; names only, so a run lists the folders but opens no image);
    a ``split_zhou_ImageNet.json`` placed in ``imagenet/`` is used first.
    """

    dataset_dir = "imagenet"
    LAYOUT = """\
imagenet/
  images/train/<wnid>/*.JPEG        (e.g. images/train/n01440764/n01440764_10026.JPEG)
  images/val/<wnid>/*.JPEG          (the 50,000 validation images sorted into wnid folders)
  classnames.txt                    (CoOp's list: '<wnid> <class name>' per line, 1000 lines)"""

    def load(self, cfg, root, ddir):
        sources = stamp_sources({}, os.path.join(ddir, "classnames.txt"))  # the key of a built split
        names = self.read_classnames(os.path.join(ddir, "classnames.txt"))
        classnames = list(names.values())
        image_dir = os.path.join(ddir, "images")

        def listed(split):
            folder = self.require_dir(os.path.join(image_dir, split), f"{split} image folder")
            stamp_sources(sources, folder)
            return self.wnid_folders(folder, names)

        train, _, test, _ = split_or_build(cfg, self.NAME, ddir, image_dir,
                                           lambda: (listed("train"), [], listed("val")), classnames, sources)
        # few-shot as upstream's ImageNet: train only, in upstream's list order (engine.data.fewshot)
        train, _, test, classnames = apply_fewshot_and_subsample(cfg, self.NAME, train, [], test, classnames,
                                                                 dataset_dir=ddir, draw_val=False,
                                                                 imagenet_image_dir=image_dir)
        return dict(train_x=train, val=test, test=test, classnames=classnames)


@DATASET_REGISTRY.register()
class ImageNetSketch(_ImageNetFamily):
    """ImageNet-Sketch: 1000 classes in ImageNet's order (folders are wnids)."""

    dataset_dir = "imagenet-sketch"
    LAYOUT = """\
imagenet-sketch/
  images/<wnid>/*.JPEG              (e.g. images/n01440764/sketch_0.JPEG)
  classnames.txt                    (ImageNet's list; or imagenet/classnames.txt)"""

    def load(self, cfg, root, ddir):
        names = self.variant_classnames(root, ddir)
        test = self.wnid_folders(self.require_dir(os.path.join(ddir, "images"), "image folder"), names)
        return finish_test_only(cfg, test, list(names.values()))


@DATASET_REGISTRY.register()
class ImageNetV2(_ImageNetFamily):
    """ImageNet-V2 matched-frequency: folders ``0..999`` index ImageNet's list (label = folder
    index); base/new as ImageNet's 500/500."""

    dataset_dir = "imagenetv2"
    LAYOUT = """\
imagenetv2/
  imagenetv2-matched-frequency-format-val/<0..999>/<hash>.jpeg
  classnames.txt                    (ImageNet's list; or imagenet/classnames.txt)"""

    def load(self, cfg, root, ddir):
        classnames = list(self.variant_classnames(root, ddir).values())
        image_dir = self.require_dir(os.path.join(ddir, "imagenetv2-matched-frequency-format-val"), "image folder")
        extra = [f for f in class_subfolders(image_dir) if not (f.isdigit() and int(f) < len(classnames))]
        if extra:
            self.fail(f"folders in {image_dir} must be class indices 0..{len(classnames) - 1}; found {preview(extra)}")
        folders = [str(i) for i in range(len(classnames))]
        return finish_test_only(cfg, list_class_folders(image_dir, folders, classnames, self.NAME, self.LAYOUT),
                                classnames)


class _ImageNetSubset(_ImageNetFamily):
    """A 200-class ImageNet subset, test only: the wnid folders present (sorted; the official
    subset), named with ImageNet's names; labels 0..199 index that sorted list (a 200-way problem,
    as in CoOp); base/new cuts those 200 classes 100/100 (not ImageNet's base/new)."""

    image_subdir = ""

    def load(self, cfg, root, ddir):
        names = self.variant_classnames(root, ddir)
        image_dir = self.require_dir(os.path.join(ddir, self.image_subdir), "image folder")
        folders = class_subfolders(image_dir)
        if not folders:
            self.fail(f"no class folders in {image_dir}")
        test = self.wnid_folders(image_dir, names, folders)
        return finish_test_only(cfg, test, [names[f] for f in folders])


def _subset_layout(folder, sub):
    return f"""\
{folder}/
  {sub}/<wnid>/*.jpg{' ' * (21 - len(sub))}(200 wnid folders; README.txt ignored)
  classnames.txt                    (ImageNet's list; or imagenet/classnames.txt)"""


@DATASET_REGISTRY.register()
class ImageNetA(_ImageNetSubset):
    """ImageNet-A (natural adversarial examples)."""

    dataset_dir, image_subdir = "imagenet-adversarial", "imagenet-a"
    LAYOUT = _subset_layout(dataset_dir, image_subdir)


@DATASET_REGISTRY.register()
class ImageNetR(_ImageNetSubset):
    """ImageNet-R (renditions)."""

    dataset_dir, image_subdir = "imagenet-rendition", "imagenet-r"
    LAYOUT = _subset_layout(dataset_dir, image_subdir)
