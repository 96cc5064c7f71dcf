"""The on-disk frozen image-feature cache (engine/feature_cache.py): a change in anything the
features depend on is a miss, concurrent writers leave whole files, disk use is bounded, the
cache can be cleared, and a run's log says where its features came from."""
import multiprocessing as mp
import os
import shutil

import pytest
import torch

from cpt.engine import feature_cache as fc
from tests.engine_fixtures import write_fixture_tree
from tests.runs import INIT, run


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data"))
    write_fixture_tree(path, per_class=(6, 2, 4), size=32)
    return path


class _Clip:
    """What make_key reads from a backbone."""

    def __init__(self, file="", precision="fp32", arch="world-tiny"):
        self.name, self.arch, self.precision = "world-tiny", arch, precision
        self.source = {"file": file, "tag": ""}
        self.model = torch.nn.Module()
        self.model.visual = torch.nn.Linear(3, 2)
        torch.nn.init.constant_(self.model.visual.weight, 0.5)
        torch.nn.init.zeros_(self.model.visual.bias)


def _images(folder, n=3):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        p = os.path.join(folder, f"{i}.png")
        with open(p, "wb") as f:
            f.write(bytes([i]) * 10)
        paths.append(p)
    return paths


def test_any_change_of_what_the_features_depend_on_is_a_miss(tmp_path):
    cache = str(tmp_path / "cache")
    weights = str(tmp_path / "w.pt")
    with open(weights, "wb") as f:
        f.write(b"weights-v1")
    paths = _images(str(tmp_path / "img"))
    clip = _Clip(weights)
    key = fc.make_key(clip, "T(224)", paths, "cpu", cache_root=cache)
    feats = torch.randn(3, 2)
    assert fc.load(cache, key) is None
    fc.store(cache, key, feats)
    assert torch.equal(fc.load(cache, key), feats)
    assert fc.make_key(clip, "T(224)", paths, "cpu", cache_root=cache) == key  # same inputs: a hit

    variants = {
        "precision": (_Clip(weights, precision="fp16"), "T(224)", paths, "cpu"),
        "arch": (_Clip(weights, arch="ViT-B-16"), "T(224)", paths, "cpu"),
        "transform": (clip, "T(336)", paths, "cpu"),
        "order": (clip, "T(224)", paths[::-1], "cpu"),
        "subset": (clip, "T(224)", paths[:2], "cpu"),
        "device": (clip, "T(224)", paths, "cuda"),
    }
    for what, args in variants.items():
        k = fc.make_key(*args, cache_root=cache)
        assert k != key and fc.load(cache, k) is None, what
    # an image rewritten (same path, other size/mtime) and the weights file replaced
    with open(paths[1], "wb") as f:
        f.write(b"other image bytes")
    assert fc.load(cache, fc.make_key(clip, "T(224)", paths, "cpu", cache_root=cache)) is None
    paths = _images(str(tmp_path / "img2"))
    key = fc.make_key(clip, "T(224)", paths, "cpu", cache_root=cache)
    fc.store(cache, key, feats)
    st = os.stat(weights)
    with open(weights, "wb") as f:
        f.write(b"weights-v2")  # same size
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    k2 = fc.make_key(clip, "T(224)", paths, "cpu", cache_root=cache)
    assert k2["weights"] != key["weights"] and fc.load(cache, k2) is None
    # without a weights file the image tower's tensors are hashed
    a, b = _Clip(), _Clip()
    b.model.visual.weight.data[0, 0] = 0.25
    assert fc.weights_digest(a) != fc.weights_digest(b)
    assert fc.weights_digest(_Clip()) == fc.weights_digest(a)


def test_weights_file_hashed_once(tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    weights = str(tmp_path / "w.pt")
    with open(weights, "wb") as f:
        f.write(b"x" * 1000)
    first = fc.file_sha256(weights, cache)
    monkeypatch.setattr(fc.hashlib, "sha256", lambda: (_ for _ in ()).throw(AssertionError("rehashed")))
    assert fc.file_sha256(weights, cache) == first


def test_damaged_or_foreign_entry_is_a_miss(tmp_path):
    cache = str(tmp_path / "cache")
    key = fc.make_key(_Clip(), "T", _images(str(tmp_path / "i")), "cpu", cache_root=cache)
    path = fc.store(cache, key, torch.ones(3, 2))
    with open(path, "wb") as f:
        f.write(b"not a torch file")
    assert fc.load(cache, key) is None
    other = dict(key, transform="U")
    shutil.copy(fc.store(cache, other, torch.ones(3, 2)), path)  # a file under the wrong name
    assert fc.load(cache, key) is None


def _writer(cache, key, value, n):
    for _ in range(n):
        fc.store(cache, key, torch.full((2000, 64), float(value)))


def test_concurrent_writers_and_a_reader_never_see_half_a_file(tmp_path):
    cache = str(tmp_path / "cache")
    key = fc.make_key(_Clip(), "T", _images(str(tmp_path / "i")), "cpu", cache_root=cache)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(cache, key, v, 15)) for v in (1, 2)]
    for p in procs:
        p.start()
    seen = 0
    while any(p.is_alive() for p in procs) or seen == 0:
        got = fc.load(cache, key)
        if got is not None:
            assert got.shape == (2000, 64) and float(got.min()) == float(got.max()) in (1.0, 2.0)
            seen += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert seen > 0
    assert [f for f in os.listdir(fc.cache_folder(cache)) if f.endswith(".pt")] == [os.path.basename(
        fc.entry_path(cache, key))]
    assert not [f for f in os.listdir(fc.cache_folder(cache)) if f.startswith(".tmp-")]


def test_disk_use_bounded_least_recently_used_removed_and_clear(tmp_path, capsys):
    cache = str(tmp_path / "cache")
    paths = _images(str(tmp_path / "i"))
    keys = [fc.make_key(_Clip(), f"T{i}", paths, "cpu", cache_root=cache) for i in range(4)]
    feats = torch.zeros(256 * 1024 // 4, 1)  # ~256 KB per entry
    for i, k in enumerate(keys[:3]):
        fc.store(cache, k, feats, max_mb=1)
        os.utime(fc.entry_path(cache, k), (1000 + i, 1000 + i))
    assert fc.load(cache, keys[0]) is not None  # a hit refreshes entry 0: entry 1 is now the oldest
    fc.store(cache, keys[3], feats, max_mb=0.6)
    alive = [fc.load(cache, k) is not None for k in keys]
    assert alive == [True, False, False, True]
    assert sum(s for _, s, _ in fc.entries(cache)) <= 0.6 * (1 << 20)
    assert fc.store(cache, keys[1], torch.zeros(1 << 20, 1), max_mb=1) is None  # larger than the bound

    fc.main(["info", "--cache-dir", cache])
    assert "2 entries" in capsys.readouterr().out
    fc.main(["clear", "--cache-dir", cache])
    assert "removed" in capsys.readouterr().out
    assert fc.entries(cache) == [] and all(fc.load(cache, k) is None for k in keys)


def _log(out):
    with open(os.path.join(out, "log.txt")) as f:
        return f.read()


def test_run_logs_cache_miss_then_hit_and_same_logits(root, tmp_path):
    first = run(root, str(tmp_path / "a"), "CoOp", *INIT["CoOp"], epochs=0)
    assert "computed (not in the cache), written to" in _log(str(tmp_path / "a"))
    second = run(root, str(tmp_path / "b"), "KgCoOp", *INIT["KgCoOp"], epochs=0)
    assert "read from the cache" in _log(str(tmp_path / "b"))
    assert torch.equal(second.last_outputs["logits"], first.last_outputs["logits"])
    off = run(root, str(tmp_path / "c"), "CoOp", *INIT["CoOp"], "TEST.CACHE_FEATURES", "False", epochs=0)
    assert "cache" not in "".join(line for line in _log(str(tmp_path / "c")).splitlines() if "Image features" in line)
    assert torch.allclose(off.last_outputs["logits"], first.last_outputs["logits"], atol=1e-5)
