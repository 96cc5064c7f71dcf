"""Few-shot draws against Dassl's: the lists in tests/fixtures/upstream/fewshot_dassl.json were
drawn by Dassl c61a1b5 through CoOp ff61507's dataset modules (see the README there)."""
import json
import logging
import os
import pickle
import shutil

import pytest

from cpt import datasets  # noqa: F401  (registers the benchmarks)
from cpt.engine.config import get_cfg_default
from cpt.engine.data import build_dataset, fewshot
from cpt.engine.data.fewshot import UpstreamFileError
from tests import upstream_layouts as layouts

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "upstream")
with open(os.path.join(FIX, "fewshot_dassl.json")) as f:
    UPSTREAM = json.load(f)
FOLDER = {"DescribableTextures": "dtd", "ImageNet": "imagenet"}


def draws(dataset):
    return [d for d in UPSTREAM["draws"] if d["dataset"] == dataset]


def case_id(d):
    return f"{d['dataset']}-seed{d['seed']}-K{d['shots']}-{d['subsample']}"


def build(root, name, cache, seed, shots, subsample="all"):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    cfg.DATASET.NUM_SHOTS = shots
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.SEED = seed
    cfg.CACHE_DIR = str(cache)
    return build_dataset(cfg)


def rows(items, ddir):
    return [[os.path.relpath(x.impath, ddir), int(x.label)] for x in items]


def tree_files(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("upstream-trees")
    layouts.write_dtd(str(base / "dtd-root"))
    layouts.write_imagenet(str(base / "imagenet-root"))
    return {"DescribableTextures": base / "dtd-root", "ImageNet": base / "imagenet-root"}


@pytest.fixture
def upstream_listdir(monkeypatch):
    """The listing Dassl saw when the fixture was made (os.listdir order is filesystem-specific)."""
    recorded = UPSTREAM["imagenet_train_listdir"]
    real = fewshot._listdir

    def listing(folder):
        wnid = os.path.basename(folder)
        if os.path.basename(os.path.dirname(folder)) == "train" and wnid in recorded:
            assert sorted(recorded[wnid]) == sorted(real(folder))
            return list(recorded[wnid])
        return real(folder)

    monkeypatch.setattr(fewshot, "_listdir", listing)


def test_fixture_is_discriminative():
    """The fixtures would catch the usual deviations: label-order grouping and sorted listings."""
    d = next(d for d in draws("DescribableTextures") if d["shots"] == 16 and d["subsample"] == "all")
    labels = [y for _, y in d["train"]]
    first_seen = list(dict.fromkeys(labels))
    assert first_seen != sorted(first_seen)
    assert any(v != sorted(v) for v in UPSTREAM["imagenet_train_listdir"].values())
    assert len(UPSTREAM["draws"]) == 2 * 3 * 3 * 3  # 2 layouts x seeds 1-3 x K 1/4/16 x all/base/new


@pytest.mark.parametrize("d", draws("DescribableTextures"), ids=case_id)
def test_split_file_layout_draws_like_dassl(d, trees, tmp_path):
    root = trees["DescribableTextures"]
    before = tree_files(root)
    ds = build(root, "DescribableTextures", tmp_path / "cache", d["seed"], d["shots"], d["subsample"])
    ddir = os.path.join(root, "dtd")
    assert rows(ds.train_x, ddir) == d["train"]
    assert rows(ds.val, ddir) == d["val"]
    assert ds.classnames == d["classnames"]
    assert tree_files(root) == before


@pytest.mark.parametrize("d", draws("ImageNet"), ids=case_id)
def test_imagenet_layout_draws_like_dassl(d, trees, tmp_path, upstream_listdir):
    root = trees["ImageNet"]
    ds = build(root, "ImageNet", tmp_path / "cache", d["seed"], d["shots"], d["subsample"])
    ddir = os.path.join(root, "imagenet")
    assert rows(ds.train_x, ddir) == d["train"]
    # upstream's ImageNet val is its test set (listed in os.listdir order; order does not matter)
    assert sorted(rows(ds.val, ddir)) == sorted(d["val"])
    assert ds.classnames == d["classnames"]


def test_imagenet_order_comes_from_the_listing(trees, tmp_path, monkeypatch):
    """Same seed, another folder listing: another draw (the listing order is what Dassl samples)."""
    d = next(d for d in draws("ImageNet") if d["seed"] == 1 and d["shots"] == 4 and d["subsample"] == "all")
    recorded = UPSTREAM["imagenet_train_listdir"]
    monkeypatch.setattr(fewshot, "_listdir", lambda folder: sorted(recorded.get(os.path.basename(folder), [])))
    ds = build(trees["ImageNet"], "ImageNet", tmp_path / "cache", 1, 4)
    assert rows(ds.train_x, os.path.join(trees["ImageNet"], "imagenet")) != d["train"]


def copy_tree(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_upstream_pickle_is_read(trees, tmp_path, caplog):
    """Dassl's own shot_4-seed_1.pkl, stored as seed 7: the project returns seed 1's lists."""
    root = copy_tree(trees["DescribableTextures"], tmp_path / "data")
    ddir = root / "dtd"
    (ddir / "split_fewshot").mkdir()
    target = ddir / "split_fewshot" / "shot_4-seed_7.pkl"
    shutil.copy(os.path.join(FIX, "dassl_DescribableTextures_shot_4-seed_1.pkl"), target)
    before = tree_files(root)
    d = next(d for d in draws("DescribableTextures") if (d["seed"], d["shots"], d["subsample"]) == (1, 4, "base"))
    with caplog.at_level(logging.INFO, logger="cpt"):
        ds = build(root, "DescribableTextures", tmp_path / "cache", 7, 4, "base")
    assert rows(ds.train_x, ddir) == d["train"] and rows(ds.val, ddir) == d["val"]
    assert f"read from upstream file {target}" in caplog.text
    assert tree_files(root) == before
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cpt"):
        other = build(root, "DescribableTextures", tmp_path / "cache", 8, 4, "base")
    assert "drawn with Dassl's rule" in caplog.text and rows(other.train_x, ddir) != d["train"]


def test_upstream_imagenet_pickles_are_read(trees, tmp_path):
    """preprocessed.pkl fixes the order (no listing needed); shot_K-seed_S.pkl the draw itself."""
    root = copy_tree(trees["ImageNet"], tmp_path / "data")
    ddir = root / "imagenet"
    shutil.copy(os.path.join(FIX, "dassl_ImageNet_preprocessed.pkl"), ddir / "preprocessed.pkl")
    for seed in (1, 2, 3):
        d = next(d for d in draws("ImageNet") if (d["seed"], d["shots"], d["subsample"]) == (seed, 16, "new"))
        ds = build(root, "ImageNet", tmp_path / "cache", seed, 16, "new")
        assert rows(ds.train_x, ddir) == d["train"]
    (ddir / "split_fewshot").mkdir()
    shutil.copy(os.path.join(FIX, "dassl_ImageNet_shot_4-seed_1.pkl"), ddir / "split_fewshot" / "shot_4-seed_5.pkl")
    d = next(d for d in draws("ImageNet") if (d["seed"], d["shots"], d["subsample"]) == (1, 4, "all"))
    assert rows(build(root, "ImageNet", tmp_path / "cache", 5, 4).train_x, ddir) == d["train"]


def test_short_class_keeps_all_images_and_warns(trees, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="cpt"):
        ds = build(trees["DescribableTextures"], "DescribableTextures", tmp_path / "cache", 1, 16)
    short = layouts.DTD_CLASSES.index(layouts.SHORT_CLASS)
    assert sum(x.label == short for x in ds.train_x) == layouts.DTD_TRAIN_COUNTS[short]
    assert sum(x.label != short for x in ds.train_x) == 16 * (len(layouts.DTD_CLASSES) - 1)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"'{layouts.SHORT_CLASS}'" in m and "NUM_SHOTS=16" in m for m in warned)
    assert not any("'banded'" in m for m in warned)


def test_mismatched_or_hostile_pickles_fail_clearly(trees, tmp_path):
    root = copy_tree(trees["DescribableTextures"], tmp_path / "data")
    sf = root / "dtd" / "split_fewshot"
    sf.mkdir()
    blob = fewshot.load_upstream_pickle(os.path.join(FIX, "dassl_DescribableTextures_shot_4-seed_1.pkl"))
    assert len(blob["train"]) == 4 * 7 and len(blob["val"]) == sum(min(4, n) for n in layouts.DTD_VAL_COUNTS)
    # another image list: the upstream file does not belong to this split
    rec = blob["train"][0]
    rec._impath = rec._impath.replace(".jpg", "_other.jpg")
    path = sf / "shot_4-seed_1.pkl"

    class Datum:  # pickled under a Dassl module name
        pass

    Datum.__module__, Datum.__qualname__ = "dassl.data.datasets.base_dataset", "Datum"
    import sys
    import types

    mod = types.ModuleType("dassl.data.datasets.base_dataset")
    mod.Datum = Datum
    for name in ("dassl", "dassl.data", "dassl.data.datasets"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["dassl.data.datasets.base_dataset"] = mod
    try:
        def as_dassl(r):
            x = Datum()
            x.__dict__.update(vars(r))
            return x

        with open(path, "wb") as f:
            pickle.dump({"train": [as_dassl(r) for r in blob["train"]], "val": []}, f)
        with pytest.raises(UpstreamFileError, match="not in this dataset's train list") as e:
            build(root, "DescribableTextures", tmp_path / "cache", 1, 4)
        assert str(path) in str(e.value)
        # a label that disagrees with the split file
        rec._impath = rec._impath.replace("_other.jpg", ".jpg")
        rec._label = (rec._label + 1) % 7
        with open(path, "wb") as f:
            pickle.dump({"train": [as_dassl(r) for r in blob["train"]], "val": []}, f)
        with pytest.raises(UpstreamFileError, match="has label"):
            build(root, "DescribableTextures", tmp_path / "cache", 1, 4)
    finally:
        for name in ("dassl.data.datasets.base_dataset", "dassl.data.datasets", "dassl.data", "dassl"):
            sys.modules.pop(name, None)
    # anything but Datum records and containers is refused
    with open(path, "wb") as f:
        pickle.dump({"train": [os.getcwd]}, f)
    with pytest.raises(UpstreamFileError, match="refusing to load"):
        build(root, "DescribableTextures", tmp_path / "cache", 1, 4)
