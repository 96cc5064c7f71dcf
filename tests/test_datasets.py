"""Dataset loaders on tiny fixture trees written in each benchmark's real layout."""
import json
import math
import os
import pickle
import shutil

import numpy as np
import pytest

from cpt import datasets  # noqa: F401  (registers the benchmarks)
from cpt.datasets import check, coco, common
from cpt.datasets.common import DatasetLayoutError
from cpt.engine.config import get_cfg_default
from cpt.engine.data import DATASET_REGISTRY, build_dataset
from tests import dataset_fixtures as fx

NAMES = list(fx.WRITERS)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_cfg(root, name, cache, shots=-1, seed=1, subsample="all", **dataset_keys):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    cfg.SEED = seed
    cfg.DATASET.NUM_SHOTS = shots
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.CACHE_DIR = str(cache)
    for k, v in dataset_keys.items():
        cfg.DATASET[k] = v
    return cfg


def build(root, name, cache, **kw):
    return build_dataset(make_cfg(root, name, cache, **kw))


def tree_files(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("trees")
    out = {}
    for name, writer in fx.WRITERS.items():
        root = base / name
        root.mkdir()
        out[name] = (str(root), writer(str(root)))
    return out


def fresh(tmp_path, name):
    root = tmp_path / "data"
    root.mkdir()
    return str(root), fx.WRITERS[name](str(root))


def check_labels(ds, n):
    assert ds.num_classes == n == len(ds.classnames)
    for items in (ds.train_x, ds.val, ds.test):
        for x in items:
            if ds.is_multilabel:
                v = np.asarray(x.label)
                assert v.shape == (n,) and set(np.unique(v)) <= {-1, 0, 1}
            else:
                assert 0 <= x.label < n and ds.classnames[x.label] == x.classname


def fewshot_key(ds):
    return [x.impath for x in ds.train_x] + ["|"] + [x.impath for x in ds.val]


# ---------------------------------------------------------------------------------------- contract
def test_every_benchmark_is_registered_with_a_yaml():
    for name in NAMES:
        DATASET_REGISTRY.get(name)
        path = os.path.join(REPO, "configs", "datasets", fx.STEMS[name] + ".yaml")
        with open(path) as f:
            text = f.read()
        assert f'NAME: "{name}"' in text
        multilabel = name in ("COCO2014", "VOC2007", "NUSWIDE", "COCOLT", "VOCLT")
        assert ('EVALUATOR: "MultiLabelClassification"' in text) == multilabel


@pytest.mark.parametrize("name", [n for n in DATASET_REGISTRY.registered_names() if n in fx.WRITERS])
def test_contract(name, trees, tmp_path, monkeypatch):
    root, exp = trees[name]
    before = tree_files(root)
    import PIL.Image

    def no_open(*a, **k):
        raise AssertionError("building a dataset must not open images")

    monkeypatch.setattr(PIL.Image, "open", no_open)
    cache = tmp_path / "cache"
    n = len(exp["classnames"])

    ds = build(root, name, cache)
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == exp["counts"]
    assert ds.classnames == exp["classnames"]
    assert ds.is_multilabel == exp.get("multilabel", False)
    check_labels(ds, n)
    if "groups" in exp:
        assert ds.groups == exp["groups"]

    m = math.ceil(n / 2)
    base = build(root, name, cache, subsample="base")
    new = build(root, name, cache, subsample="new")
    assert base.classnames == exp["classnames"][:m] and new.classnames == exp["classnames"][m:]
    check_labels(base, m)
    check_labels(new, n - m)
    if ds.is_multilabel:
        assert len(base.test) == len(new.test) == len(ds.test)
        assert all(np.array_equal(b.label, x.label[:m]) for b, x in zip(base.test, ds.test))
        if "groups" in exp:
            kept = sorted(i for g in base.groups.values() for i in g)
            assert kept == list(range(m))
    else:
        assert len(base.test) == sum(x.label < m for x in ds.test)
        assert len(base.test) + len(new.test) == len(ds.test)

    if ds.train_x:
        a = build(root, name, cache, shots=2, seed=1)
        again = build(root, name, cache, shots=2, seed=1)
        other = build(root, name, cache, shots=2, seed=2)
        assert fewshot_key(a) == fewshot_key(again)
        assert fewshot_key(a) != fewshot_key(other)
        # single-label draws are Dassl's (recomputed, nothing cached); multi-label ones are cached
        assert len(list((cache / "split_fewshot" / name).glob("shot_2-seed_1-*.json"))) == int(ds.is_multilabel)
        if ds.is_multilabel:
            full = (np.stack([x.label for x in ds.train_x]) == 1).sum(0)
            few = (np.stack([x.label for x in a.train_x]) == 1).sum(0)
            assert (few >= np.minimum(full, 2)).all() and len(a.train_x) <= 2 * n
        else:
            per_class = np.bincount([x.label for x in a.train_x], minlength=n)
            full = np.bincount([x.label for x in ds.train_x], minlength=n)
            assert (per_class == np.minimum(full, 2)).all()
            assert len(a.val) <= 2 * n
        fb = build(root, name, cache, shots=2, seed=1, subsample="base")
        assert {x.impath for x in fb.train_x} <= {x.impath for x in a.train_x}
    assert tree_files(root) == before, "nothing may be written into the dataset root"


@pytest.mark.parametrize("name", NAMES)
def test_missing_root_and_folder(name, tmp_path):
    with pytest.raises(DatasetLayoutError) as e:
        build(tmp_path / "nope", name, tmp_path / "cache")
    assert str(tmp_path / "nope") in str(e.value) and "Expected layout" in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError) as e:
        build(tmp_path / "empty", name, tmp_path / "cache")
    assert str(tmp_path / "empty") in str(e.value) and "Expected layout" in str(e.value)


# ---------------------------------------------------------------------------------------- split files
def test_coop_split_file_is_used(tmp_path):
    root, _ = fresh(tmp_path, "DescribableTextures")
    ddir = os.path.join(root, "dtd")
    split = {"train": [], "val": [], "test": []}
    for c, cname in enumerate(fx.DTD_CLASSES):
        for i in range(10):
            key = "train" if i < 3 else "val" if i < 4 else "test"
            split[key].append([f"{cname}/{cname}_{i:04d}.jpg", c, cname])
    fx.jdump(os.path.join(ddir, "split_zhou_DescribableTextures.json"), split)
    ds = build(root, "DescribableTextures", tmp_path / "cache")
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (15, 5, 30)
    assert ds.train_x[0].impath == os.path.join(ddir, "images", "banded", "banded_0000.jpg")
    assert not os.path.exists(common.dataset_cache_dir(make_cfg(root, "x", tmp_path / "cache"),
                                                       "DescribableTextures", ddir))


def test_built_split_goes_to_cache_and_is_reused(tmp_path):
    root, _ = fresh(tmp_path, "Caltech101")
    cache = tmp_path / "cache"
    ds = build(root, "Caltech101", cache)
    ddir = os.path.join(root, "caltech-101")
    cached = os.path.join(common.dataset_cache_dir(make_cfg(root, "x", cache), "Caltech101", ddir),
                          "split_zhou_Caltech101.json")
    assert os.path.isfile(cached) and not os.path.exists(os.path.join(ddir, "split_zhou_Caltech101.json"))
    with open(cached) as f:
        blob = json.load(f)
    assert [x.impath for x in ds.test] == [os.path.join(ddir, "101_ObjectCategories", p) for p, _, _ in blob["test"]]
    assert not any("BACKGROUND_Google" in p or "Faces_easy" in p for s in blob.values() for p, _, _ in s)
    # the cached split is what is read next: removing a class folder now is reported, not re-split
    shutil.rmtree(os.path.join(ddir, "101_ObjectCategories", "anchor"))
    with pytest.raises(DatasetLayoutError, match=r"lists \d+ train image\(s\) \(of 25\) that do not exist"):
        build(root, "Caltech101", cache)


def test_split_file_with_missing_images_reports_count_and_paths(tmp_path):
    root, _ = fresh(tmp_path, "OxfordPets")
    ddir = os.path.join(root, "oxford_pets")
    split = {"train": [["Abyssinian_1.jpg", 0, "abyssinian"], ["gone_1.jpg", 0, "abyssinian"],
                       ["gone_2.jpg", 0, "abyssinian"], ["gone_3.jpg", 1, "american_bulldog"]],
             "val": [["american_bulldog_1.jpg", 1, "american_bulldog"]],
             "test": [["Abyssinian_2.jpg", 0, "abyssinian"]]}
    fx.jdump(os.path.join(ddir, "split_zhou_OxfordPets.json"), split)
    with pytest.raises(DatasetLayoutError) as e:
        build(root, "OxfordPets", tmp_path / "cache")
    msg = str(e.value)
    assert "3 train image(s) (of 4)" in msg and os.path.join(ddir, "images", "gone_1.jpg") in msg
    assert "split_zhou_OxfordPets.json" in msg


def test_large_split_check_is_sampled(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "FULL_CHECK_LIMIT", 10)
    monkeypatch.setattr(common, "SAMPLE_SIZE", 3)
    assert list(common.verification_indices(25)) == [0, 12, 24]
    assert list(common.verification_indices(10)) == list(range(10))
    root, _ = fresh(tmp_path, "Food101")
    ddir = os.path.join(root, "food-101")
    rows = [[f"{c}/{c}_{i:04d}.jpg", k, c] for k, c in enumerate(fx.FOOD_CLASSES) for i in range(5)]
    rows[5][0] = "baby_back_ribs/missing_a.jpg"  # not sampled: found later by the loader
    fx.jdump(os.path.join(ddir, "split_zhou_Food101.json"), {"train": rows, "val": [], "test": rows[:2]})
    ds = build(root, "Food101", tmp_path / "c1")
    from cpt.engine.utils import read_image

    with pytest.raises(FileNotFoundError, match="missing_a.jpg"):
        read_image(ds.train_x[5].impath)
    rows[12][0] = "baklava/missing_b.jpg"  # sampled index: full scan reports both
    fx.jdump(os.path.join(ddir, "split_zhou_Food101.json"), {"train": rows, "val": [], "test": rows[:2]})
    with pytest.raises(DatasetLayoutError, match=r"2 train image\(s\) \(of 25\).*missing_a.jpg.*missing_b.jpg"):
        build(root, "Food101", tmp_path / "c2")


def test_split_file_label_errors(tmp_path):
    root, _ = fresh(tmp_path, "DescribableTextures")
    path = os.path.join(root, "dtd", "split_zhou_DescribableTextures.json")
    fx.jdump(path, {"train": [["banded/banded_0000.jpg", 0, "banded"], ["bumpy/bumpy_0000.jpg", 2, "bumpy"]],
                    "val": [], "test": []})
    with pytest.raises(DatasetLayoutError, match="missing labels 1"):
        build(root, "DescribableTextures", tmp_path / "cache")
    fx.jdump(path, {"train": [["banded/banded_0000.jpg", 0, "banded"]], "val": []})
    with pytest.raises(DatasetLayoutError, match="malformed"):
        build(root, "DescribableTextures", tmp_path / "cache")


# ---------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name,remove,expected", [
    ("StanfordCars", "stanford_cars/devkit/cars_train_annos.mat", "split_zhou_StanfordCars.json"),
    ("SUN397", "sun397/Training_01.txt", "split_zhou_SUN397.json"),
    ("UCF101", "ucf101/ucfTrainTestlist/classInd.txt", "split_zhou_UCF101.json"),
    ("OxfordPets", "oxford_pets/annotations/test.txt", "split_zhou_OxfordPets.json"),
    ("OxfordFlowers", "oxford_flowers/imagelabels.mat", "split_zhou_OxfordFlowers.json"),
    ("DescribableTextures", "dtd/images", "split_zhou_DescribableTextures.json"),
    ("FGVCAircraft", "fgvc_aircraft/images_variant_val.txt", "images_variant_val.txt"),
    ("ImageNet", "imagenet/classnames.txt", "classnames.txt"),
    ("COCO2014", "coco/annotations/instances_val2014.json", "instances_val2014.json"),
    ("VOC2007", "VOCdevkit/VOC2007/ImageSets/Main/dog_test.txt", "dog_test.txt"),
    ("NUSWIDE", "nuswide/TrainTestLabels/Labels_bear_Train.txt", "Labels_bear_Train.txt"),
    ("COCOLT", "coco/longtail2017/img_id.txt", "img_id.txt"),
    ("VOCLT", "VOCdevkit/longtail2012/img_id.txt", "img_id.txt"),
])
def test_missing_split_source(name, remove, expected, tmp_path):
    root, _ = fresh(tmp_path, name)
    target = os.path.join(root, remove)
    shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    with pytest.raises(DatasetLayoutError) as e:
        build(root, name, tmp_path / "cache")
    assert expected in str(e.value) and target in str(e.value) and "Expected layout" in str(e.value)


@pytest.mark.parametrize("name,folder", [
    ("DescribableTextures", "dtd/images/bubbly"),
    ("EuroSAT", "eurosat/2750/Forest"),
    ("ImageNet", "imagenet/images/val/n01443537"),
    ("ImageNetV2", "imagenetv2/imagenetv2-matched-frequency-format-val/2"),
    ("ImageNetR", "imagenet-rendition/imagenet-r/n01491361"),
])
def test_empty_class_folder(name, folder, tmp_path):
    root, _ = fresh(tmp_path, name)
    d = os.path.join(root, folder)
    shutil.rmtree(d)
    os.makedirs(d)
    with pytest.raises(DatasetLayoutError, match="holds no images") as e:
        build(root, name, tmp_path / "cache")
    assert d in str(e.value)


def test_imagenet_class_list_is_the_full_list(tmp_path):
    root, exp = fresh(tmp_path, "ImageNet")
    shutil.rmtree(os.path.join(root, "imagenet", "images", "train", fx.IMAGENET[-1][0]))
    with pytest.raises(DatasetLayoutError, match="1 class folder"):
        build(root, "ImageNet", tmp_path / "cache")
    os.makedirs(os.path.join(root, "imagenet", "images", "train", "n99999999"))
    with pytest.raises(DatasetLayoutError, match="not in classnames.txt"):
        build(root, "ImageNet", tmp_path / "c2")
    # the class list is classnames.txt (all of it), and val is the test set
    (tmp_path / "b").mkdir()
    root2, exp = fresh(tmp_path / "b", "ImageNet")
    ds = build(root2, "ImageNet", tmp_path / "c3", shots=1, seed=3)
    assert ds.num_classes == 6 and ds.classnames == exp["classnames"] and ds.val is ds.test


def test_corrupt_image_is_named_when_loaded(tmp_path, capsys):
    root, _ = fresh(tmp_path, "Food101")
    bad = os.path.join(root, "food-101", "images", "baklava", "baklava_0003.jpg")
    with open(bad, "wb") as f:
        f.write(b"this is not a jpeg")
    ds = build(root, "Food101", tmp_path / "cache")
    from cpt.engine.data import DatasetWrapper

    items = ds.train_x + ds.val + ds.test
    wrapper = DatasetWrapper(items, lambda im: im)
    i = [x.impath for x in items].index(bad)
    assert wrapper[(i + 1) % len(items)]["img"].size == (4, 4)
    with pytest.raises(IOError, match="baklava_0003.jpg"):
        wrapper[i]
    assert check.main(["--root", root, "--dataset", "food101", "--open", "100", "--cache-dir",
                       str(tmp_path / "cache")]) == 1
    assert "baklava_0003.jpg" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- multi-label
def test_voc_difficult_option(trees, tmp_path):
    root, _ = trees["VOC2007"]
    counts = {}
    for mode in ("ignore", "positive", "negative"):
        ds = build(root, "VOC2007", tmp_path / "cache", VOC_DIFFICULT=mode)
        lab = np.stack([x.label for x in ds.train_x])
        counts[mode] = ((lab == -1).sum(), (lab == 1).sum(), (lab == 0).sum())
    n_diff = sum(fx.voc_value(k, c) == "0" for k in range(24) for c in range(20))
    n_pos = sum(fx.voc_value(k, c) == "1" for k in range(24) for c in range(20))
    assert n_diff > 0
    assert counts["ignore"] == (n_diff, n_pos, 24 * 20 - n_pos - n_diff)
    assert counts["positive"] == (0, n_pos + n_diff, 24 * 20 - n_pos - n_diff)
    assert counts["negative"] == (0, n_pos, 24 * 20 - n_pos)
    first = build(root, "VOC2007", tmp_path / "cache").train_x[0]
    assert first.impath.endswith(os.path.join("VOC2007", "JPEGImages", "000001.jpg"))
    assert list(np.flatnonzero(first.label == 1)) == sorted({0, 3})
    with pytest.raises(ValueError, match="VOC_DIFFICULT"):
        build(root, "VOC2007", tmp_path / "cache", VOC_DIFFICULT="maybe")


def test_coco_labels_order_cache_and_captions(trees, tmp_path, monkeypatch):
    root, _ = trees["COCO2014"]
    cache = tmp_path / "cache"
    ds = build(root, "COCO2014", cache)
    pos = fx.coco_positives(14)
    assert [list(np.flatnonzero(x.label)) for x in ds.train_x] == pos
    assert ds.train_x[0].impath.endswith(os.path.join("train2014", "COCO_train2014_000000000001.jpg"))

    def boom(*a, **k):
        raise AssertionError("the instances file must be read from the cache")

    monkeypatch.setattr(coco, "read_coco_instances", boom)
    assert len(build(root, "COCO2014", cache).train_x) == 14
    caps = ds.captions()
    assert [(c, list(np.flatnonzero(v))) for c, v in caps] == [
        ("A man riding a bike down the street.", [0, 1]), ("Two cars and a train at a crossing", [2, 4])]
    as_lists = lambda cs: [(c, list(v)) for c, v in cs]  # noqa: E731
    assert as_lists(ds.captions(1)) == as_lists(caps[:1]) and as_lists(ds.captions(0)) == as_lists(caps)
    base = build(root, "COCO2014", cache, subsample="base")
    assert [list(np.flatnonzero(v)) for _, v in base.captions()] == [[0, 1], [2]]
    os.makedirs(tmp_path / "r2")
    shutil.copytree(os.path.join(root, "coco"), tmp_path / "r2" / "coco")
    os.remove(tmp_path / "r2" / "coco" / "annotations" / "captions_train2017.json")
    with pytest.raises(DatasetLayoutError, match="captions"):
        build(tmp_path / "r2", "COCO2014", cache, TRAIN_SOURCE="captions")


def test_nuswide_windows_paths(trees, tmp_path):
    root, _ = trees["NUSWIDE"]
    ds = build(root, "NUSWIDE", tmp_path / "cache")
    flickr = os.path.join(root, "nuswide", "Flickr")
    assert ds.train_x[1].impath == os.path.join(flickr, "animal", "0001_1001.jpg")
    assert ds.test[0].impath == os.path.join(flickr, "airport", "0000_1000.jpg")
    assert list(ds.train_x[1].label) == [0, 1, 1, 0, 0]


def test_long_tail_lists(tmp_path):
    root, exp = fresh(tmp_path, "COCOLT")
    ds = build(root, "COCOLT", tmp_path / "c1")
    assert ds.train_x[0].impath.endswith("000000000120.jpg")  # id-list order kept
    lt = os.path.join(root, "coco", "longtail2017")
    ids = [int(x) for x in open(os.path.join(lt, "img_id.txt")).read().split()]
    os.remove(os.path.join(lt, "img_id.txt"))
    with open(os.path.join(lt, "img_id.pkl"), "wb") as f:
        pickle.dump(np.array(ids), f)
    ds2 = build(root, "COCOLT", tmp_path / "c2")
    assert [x.impath for x in ds2.train_x] == [x.impath for x in ds.train_x] and ds2.groups == exp["groups"]
    with open(os.path.join(lt, "img_id.pkl"), "wb") as f:
        pickle.dump(ids + [424242], f)
    with pytest.raises(DatasetLayoutError, match="1 image id.*424242"):
        build(root, "COCOLT", tmp_path / "c3")
    with open(os.path.join(lt, "img_id.pkl"), "wb") as f:
        pickle.dump(set(ids), f)  # a set is read sorted
    assert build(root, "COCOLT", tmp_path / "c6").train_x[0].impath.endswith("000000000001.jpg")
    new = build(root, "COCOLT", tmp_path / "c4", subsample="new")  # classes 3, 4: both tail
    assert new.groups == {"head": [], "medium": [], "tail": [0, 1]}
    few = build(root, "COCOLT", tmp_path / "c5", shots=2)
    assert few.groups == exp["groups"]  # groups count the full long-tailed train set


# ---------------------------------------------------------------------------------------- datasets.check
def test_check_cli(trees, tmp_path, capsys):
    root, exp = trees["OxfordPets"]
    cache = str(tmp_path / "cache")
    assert check.main(["--root", root, "--dataset", "oxford_pets", "--json", "--cache-dir", cache]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"train": 40, "val": 10, "test": 20, "num_classes": 5, "classnames": exp["classnames"]}
    assert check.main(["--root", root, "--dataset", "OxfordPets", "--cache-dir", cache]) == 0
    text = capsys.readouterr().out
    assert "train" in text and "40 items" in text and "abyssinian" in text
    root_lt, _ = trees["VOCLT"]
    assert check.main(["--root", root_lt, "--dataset", "voc_lt", "--json", "--cache-dir", cache]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["train"] == 110 and out["num_classes"] == 20 and len(out["groups"]["tail"]) == 18
    assert check.main(["--root", str(tmp_path / "nope"), "--dataset", "dtd", "--cache-dir", cache]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "dtd/" in err
    assert check.main(["--root", root, "--dataset", "pets_v9"]) == 1
    assert "unknown dataset" in capsys.readouterr().err
    assert check.resolve("sun397") == ("SUN397", os.path.join(REPO, "configs", "datasets", "sun397.yaml"))
    assert check.resolve("describabletextures")[0] == "DescribableTextures"
