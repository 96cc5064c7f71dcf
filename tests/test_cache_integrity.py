"""The caches never change a number: a feature-cache entry damaged in place is caught by its checksum
and recomputed, computing features leaves the global RNG states as found, a built split is keyed by
what it was built from (folder listing, list files), and the log says where a split came from."""
import contextlib
import logging
import os
import random
import shutil

import numpy as np
import pytest
import torch
from torchvision import transforms

from cpt import datasets  # noqa: F401  (registers the benchmarks)
from cpt.datasets.common import DatasetLayoutError, dataset_cache_dir
from cpt.engine import feature_cache as fc
from cpt.engine.config import get_cfg_default
from cpt.engine.data import Datum, apply_fewshot_and_subsample, build_dataset
from tests import dataset_fixtures as fx
from tests.engine_fixtures import CLASSNAMES, write_fixture_tree


@pytest.fixture
def cpt_log(caplog):
    """``caplog`` on the project's logger alone (a run's logger setup may have stopped it propagating)."""
    logger = logging.getLogger("cpt")
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)
    logger.propagate = propagate


def _messages(caplog, level=logging.INFO):
    return [r.getMessage() for r in caplog.records if r.levelno >= level and r.name == "cpt"]


# ------------------------------------------------------------------------------------ feature cache
class _Clip:
    """What split_features reads of a backbone: make_key's fields and autocast()."""

    name, arch, precision, source = "fixture", "fixture", "fp32", {"file": "", "tag": ""}

    def __init__(self):
        self.model = torch.nn.Module()
        self.model.visual = torch.nn.Linear(3, 2)
        torch.nn.init.constant_(self.model.visual.weight, 0.5)
        torch.nn.init.zeros_(self.model.visual.bias)

    def autocast(self):
        return contextlib.nullcontext()


_CLIP = _Clip()  # built once: initialising its Linear draws from the global generator
_PROJ = torch.randn(3 * 32 * 32, 128, generator=torch.Generator().manual_seed(0))


def _encode(images):
    return torch.nn.functional.normalize(images.flatten(1) @ _PROJ, dim=-1)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    base = write_fixture_tree(str(tmp_path_factory.mktemp("data")), per_class=(6, 2, 4), size=32)
    return [Datum(os.path.join(base, "images", c, f"{i}.png"), y, 0, c)
            for y, c in enumerate(CLASSNAMES) for i in range(12)]


def _features(cache, items):
    cfg = get_cfg_default()
    cfg.CACHE_DIR = str(cache)
    cfg.DATALOADER.NUM_WORKERS = 0
    return fc.split_features(cfg, _CLIP, transforms.ToTensor(), items, _encode, "cpu", "test", use_cache=True)


def _only_entry(cache):
    (path, _, _), = fc.entries(str(cache))
    return path


def _flip_middle_byte(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))


def _zero_middle_4k(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2 - 2048)
        f.write(bytes(4096))


@pytest.mark.parametrize("damage", [_flip_middle_byte, _zero_middle_4k])
def test_entry_damaged_in_place_is_recomputed(images, tmp_path, cpt_log, damage):
    cache = tmp_path / "cache"
    first, hit = _features(cache, images)
    assert not hit and first.shape == (60, 128)
    path = _only_entry(cache)
    assert os.path.getsize(path) > 3 * 4096  # the middle of the file is tensor data
    damage(path)
    cpt_log.clear()
    again, hit = _features(cache, images)
    assert not hit and torch.equal(again, first)
    warnings = _messages(cpt_log, logging.WARNING)
    assert len(warnings) == 1 and path in warnings[0] and "recomputing" in warnings[0], warnings
    third, hit = _features(cache, images)  # replaced by the recomputed entry: a verified hit
    assert hit and torch.equal(third, first) and _only_entry(cache) == path


def test_entry_without_checksum_is_recomputed(images, tmp_path, cpt_log):
    cache = tmp_path / "cache"
    first, _ = _features(cache, images)
    path = _only_entry(cache)
    blob = torch.load(path, weights_only=True)
    torch.save({"features": blob["features"], "key": blob["key"]}, path)  # an entry written before checksums
    cpt_log.clear()
    again, hit = _features(cache, images)
    assert not hit and torch.equal(again, first)
    assert any(path in m and "no checksum" in m for m in _messages(cpt_log, logging.WARNING))
    assert "sha256" in torch.load(path, weights_only=True)


def _rng_states():
    state = [random.getstate(), np.random.get_state(), torch.get_rng_state()]
    if torch.cuda.is_available():
        state.append(torch.cuda.get_rng_state_all())
    return state


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_computing_features_leaves_the_random_streams_as_found(images, tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    before = _rng_states()
    _, hit = _features(tmp_path / "cache", images)  # cold: iterates a DataLoader
    assert not hit and _same(_rng_states(), before)
    _, hit = _features(tmp_path / "cache", images)  # warm: no DataLoader
    assert hit and _same(_rng_states(), before)


# ------------------------------------------------------------------------------------- split cache
def _build(root, cache, name="DescribableTextures", shots=-1):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT, cfg.DATASET.NAME, cfg.CACHE_DIR = str(root), name, str(cache)
    cfg.DATASET.NUM_SHOTS, cfg.DATASET.SUBSAMPLE_CLASSES, cfg.SEED = shots, "all", 1
    return build_dataset(cfg), cfg


def test_built_split_is_keyed_by_the_folder_listing(tmp_path, cpt_log):
    root, cache = tmp_path / "data", tmp_path / "cache"
    fx.make_dtd(str(root))
    ddir = str(root / "dtd")
    ds, cfg = _build(root, cache)
    cached = os.path.join(dataset_cache_dir(cfg, "DescribableTextures", ddir), "split_zhou_DescribableTextures.json")
    assert ds.classnames == fx.DTD_CLASSES
    assert f"DescribableTextures: split built from images/ and cached in {cached}" in _messages(cpt_log)

    cpt_log.clear()
    again, _ = _build(root, cache)  # unchanged folders: read from the cache, said in the log
    assert [x.impath for x in again.test] == [x.impath for x in ds.test]
    assert (f"DescribableTextures: split read from the cache {cached} (its sources are unchanged)"
            in _messages(cpt_log))

    fx.class_folders(os.path.join(ddir, "images"), ["zebra"], 10)  # a class added later
    cpt_log.clear()
    grown, _ = _build(root, cache)
    assert grown.classnames == fx.DTD_CLASSES + ["zebra"]
    assert (len(grown.train_x), len(grown.val), len(grown.test)) == (30, 12, 18)
    assert [m for m in _messages(cpt_log) if "split built from images/" in m and "images/ changed" in m]
    fewshot, _ = _build(root, cache, shots=2)  # few-shot sets are drawn from the split: the new class is in
    assert sorted({x.label for x in fewshot.train_x}) == list(range(6))

    shutil.rmtree(os.path.join(ddir, "images", "zebra"))  # images the cached split lists are gone: reported
    with pytest.raises(DatasetLayoutError, match=r"lists 5 train image\(s\) \(of 30\) that do not exist") as e:
        _build(root, cache)
    assert cached in str(e.value) and "delete it to build the split again" in str(e.value)
    os.remove(cached)
    assert _build(root, cache)[0].classnames == fx.DTD_CLASSES


def test_split_cached_before_sources_were_recorded_is_rebuilt(tmp_path, cpt_log):
    root, cache = tmp_path / "data", tmp_path / "cache"
    fx.make_dtd(str(root))
    ds, cfg = _build(root, cache)
    cached = os.path.join(dataset_cache_dir(cfg, "DescribableTextures", str(root / "dtd")),
                          "split_zhou_DescribableTextures.json")
    os.remove(cached + ".sources")
    cpt_log.clear()
    again, _ = _build(root, cache)
    assert [x.impath for x in again.train_x] == [x.impath for x in ds.train_x]  # the builder is deterministic
    assert [m for m in _messages(cpt_log) if f"cached in {cached} (the cached one was stale: it records no " in m]
    cpt_log.clear()
    _build(root, cache)
    assert any("split read from the cache" in m for m in _messages(cpt_log))


def test_built_split_is_keyed_by_its_list_files(tmp_path):
    root, cache = tmp_path / "data", tmp_path / "cache"
    fx.make_oxford_pets(str(root))
    ds, _ = _build(root, cache, "OxfordPets")
    assert len(ds.test) == 20
    test_list = root / "oxford_pets" / "annotations" / "test.txt"
    lines = test_list.read_text().splitlines()
    test_list.write_text("".join(ln + "\n" for ln in lines[: len(lines) // 2]))
    assert len(_build(root, cache, "OxfordPets")[0].test) == 10


def test_multilabel_fewshot_cache_is_keyed_by_the_whole_split(tmp_path):
    cfg = get_cfg_default()
    cfg.CACHE_DIR, cfg.SEED, cfg.DATASET.NUM_SHOTS = str(tmp_path / "cache"), 1, 1
    rng = np.random.default_rng(0)
    labels = (rng.random((12, 3)) < 0.5).astype(np.int8)
    train = [Datum(f"/d/{i}.jpg", labels[i].copy(), 0, "") for i in range(12)]
    apply_fewshot_and_subsample(cfg, "ML", train, [], [], ["a", "b", "c"])
    train[5].label = 1 - train[5].label  # same length, same first and last image: another split
    apply_fewshot_and_subsample(cfg, "ML", train, [], [], ["a", "b", "c"])
    assert len(os.listdir(tmp_path / "cache" / "split_fewshot" / "ML")) == 2
