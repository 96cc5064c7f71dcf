"""The offline world: generator determinism, labels vs captions, base/new rule, made-up names,
and the shipped tiny CLIP (offline load, manifest hash, zero-shot well above chance)."""

import json
import os

import numpy as np
import pytest
import torch

from cpt.datasets import world
from cpt.trainers.clip import world as wc


def _files(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


def test_generator_is_byte_deterministic_and_seed_dependent():
    a = world.single_sample(7, "test", 3, "clean", label=12)[0]
    b = world.single_sample(7, "test", 3, "clean", label=12)[0]
    c = world.single_sample(8, "test", 3, "clean", label=12)[0]
    assert a.dtype == np.uint8 and a.shape == (32, 32, 3)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    s1 = world.scene_sample(7, "scene_test", 5)
    s2 = world.scene_sample(7, "scene_test", 5)
    assert s1[0].tobytes() == s2[0].tobytes() and s1[1] == s2[1]
    p1 = world.generate_single_pool(3, 20)[0]
    assert p1.tobytes() == world.generate_single_pool(3, 20)[0].tobytes()
    assert p1.tobytes() != world.generate_single_pool(4, 20)[0].tobytes()


def test_cast_variant_only_recolours_the_object():
    clean = world.single_sample(0, "test", 0, "clean", label=5)[0].astype(int)
    cast = world.single_sample(0, "test", 0, "cast", label=5)[0].astype(int)
    diff = np.abs(clean - cast).sum(-1)
    assert 0 < (diff > 0).mean() < 0.6  # background untouched, object pixels changed
    assert all(p != c for p, (c, _) in zip(world.PARTNER, world.CLASS_GRID))


def test_materialize_split_is_deterministic_coop_format(tmp_path):
    p1 = world.materialize_split(str(tmp_path / "a"), "cast", seed=0, n_train_per_class=1,
                                 n_val_per_class=0, n_test_per_class=1)
    p2 = world.materialize_split(str(tmp_path / "b"), "cast", seed=0, n_train_per_class=1,
                                 n_val_per_class=0, n_test_per_class=1)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    split = json.load(open(p1))
    assert set(split) == {"train", "val", "test"} and len(split["train"]) == 64
    rel, label, name = split["train"][10]
    assert isinstance(label, int) and name == world.WORLD_NAMES[label]
    assert os.path.isfile(tmp_path / "a" / rel)
    from PIL import Image
    img = np.asarray(Image.open(tmp_path / "a" / rel))
    ref = world.single_sample(0, "train", 0, "cast", label=label)[0]
    assert img.tobytes() == ref.tobytes()  # the PNG holds exactly the generated pixels
    assert p2.endswith("split_ShapeWorld.json")


def test_multilabel_labels_match_captions(tmp_path):
    rng = np.random.default_rng(0)
    for _ in range(200):
        labs = world.sample_scene_labels(rng)
        assert 2 <= len(labs) <= 4 and len(set(labs)) == len(labs)
        assert world.caption_labels(world.scene_caption(labs, rng)) == labs
        assert world.caption_labels(world.scene_caption_description(labs)) == labs
    assert world.scene_caption_description([0, 1]) == (
        f"a {world.WORLD_CLASSNAMES[0]} and a {world.WORLD_CLASSNAMES[1]}.")
    path = world.materialize_multilabel_split(str(tmp_path), "clean", seed=0, n_train=6,
                                              n_val=2, n_test=4)
    split = json.load(open(path))
    for rows in split.values():
        for rel, y, cap in rows:
            assert len(y) == 64 and set(y) <= {0, 1} and 2 <= sum(y) <= 4
            assert world.caption_labels(cap) == [i for i, v in enumerate(y) if v == 1]
            assert os.path.isfile(tmp_path / rel)


def test_caption_corpus_is_seeded_labelled_and_mixes_names_and_descriptions():
    corpus = world.caption_corpus(0, 300)
    assert corpus == world.caption_corpus(0, 300) and corpus[:10] == world.caption_corpus(0, 10)
    assert corpus != world.caption_corpus(1, 300)
    names, descs = set(world.WORLD_NAMES), set(world.WORLD_CLASSNAMES)
    n_name = n_desc = 0
    for cap, labs in corpus:
        assert 2 <= len(labs) <= 4 and labs == sorted(set(labs))
        assert world.caption_labels(cap) == labs and "photo" not in cap
        words = cap.replace(",", " ").replace(".", " ").split()
        n_name += sum(w in names for w in words)
        n_desc += sum(f"{a} {b}" in descs for a, b in zip(words, words[1:]))
    n_obj = sum(len(labs) for _, labs in corpus)
    assert n_name + n_desc == n_obj and 0.4 < n_name / n_obj < 0.6  # p_name 0.5
    # a text-only stream: not the captions of the training scenes
    train_caps = {world.scene_caption_description(world.scene_sample(0, "scene_train", i)[1]) for i in range(50)}
    assert not train_caps & {c for c, _ in corpus}


def test_base_new_rule():
    base, new = world.base_new_split()
    assert base == list(range(32)) and new == list(range(32, 64))
    for labs in (base, new):
        colours = {world.CLASS_GRID[i][0] for i in labs}
        shapes = {world.CLASS_GRID[i][1] for i in labs}
        assert colours == set(range(8)) and shapes == set(range(8))
    assert all((c + s) % 2 == 0 for c, s in (world.CLASS_GRID[i] for i in base))
    assert all((c + s) % 2 == 1 for c, s in (world.CLASS_GRID[i] for i in new))
    assert len(set(world.CLASS_GRID)) == 64
    assert world.class_names("description")[0] == "red circle"


def test_made_up_names_are_single_distinct_tokens():
    tok = wc.get_world_tokenizer()
    names = world.class_names("name")
    assert len(set(names)) == 64
    vocab_words = set(world.COLOURS) | set(world.SHAPES) | {"photo", "a", "of"}
    for n in names:
        assert len(tok.encode(n)) == 1, n
        assert n not in vocab_words
    # "a photo of a {name}." differs between classes by exactly one token
    ids = tok(["a photo of a %s." % n for n in names[:2]])
    assert int((ids[0] != ids[1]).sum()) == 1


def test_pretraining_captions_never_say_photo():
    rng = np.random.default_rng(1)
    kinds = {"name": 0, "both": 0, "description": 0}
    for i in range(3000):
        lab = int(rng.integers(64))
        cap = world.pretrain_caption(lab, {"size_word": "small", "texture": "plain"}, rng)
        assert "photo" not in cap
        labs = world.caption_labels(cap)
        assert labs == [lab]
        has_name = world.WORLD_NAMES[lab] in cap.replace(",", " ").replace(".", " ").split()
        has_desc = world.WORLD_CLASSNAMES[lab] in cap
        kinds["both" if has_name and has_desc else "name" if has_name else "description"] += 1
    assert 0.45 < kinds["name"] / 3000 < 0.55 and 0.1 < kinds["both"] / 3000 < 0.2


def test_pack_unpack_roundtrip_rebuilds_token_table():
    torch.manual_seed(0)
    model = wc.build_world_clip()
    with torch.no_grad():
        model.token_embedding.weight[[5, 320, 49407]] += 1.0
    ckpt = wc.pack_checkpoint(model)
    assert ckpt["token_ids"].tolist() == [5, 320, 49407]
    back = wc.unpack_checkpoint(ckpt)
    diff = (back.token_embedding.weight - model.token_embedding.weight).abs()
    assert diff[[0, 1, 1000]].max() == 0  # untouched rows are the seeded init, exactly
    assert diff.max() < 2e-3  # touched rows: fp16 rounding only


@pytest.fixture(scope="module")
def shipped():
    manifest = json.load(open(wc.manifest_path(wc.DEFAULT_CHECKPOINT)))
    model, tok = wc.load_world_clip()  # verifies the sha256 against the manifest
    return model, tok, manifest


def test_checkpoint_loads_offline_and_hash_matches(shipped):
    model, tok, manifest = shipped
    assert manifest["sha256"] == wc.sha256_file(wc.DEFAULT_CHECKPOINT)
    assert os.path.getsize(wc.DEFAULT_CHECKPOINT) < 8 * 2 ** 20
    assert manifest["zero_shot_accuracy"] >= 80.0
    assert not model.training
    assert tok(["a photo of a watt."]).shape == (1, 24)
    assert model.logit_scale.exp().item() <= 100.0 + 1e-3


def test_zero_shot_on_small_clean_batch_is_well_above_chance(shipped):
    model, tok, _ = shipped
    imgs, labels = world.generate_class_balanced(0, "test", 2, "clean")
    with torch.no_grad():
        f = torch.nn.functional.normalize(model.encode_image(wc.images_to_tensor(imgs)), dim=-1)
        t = torch.nn.functional.normalize(
            model.encode_text(tok(["a photo of a %s." % n for n in world.class_names("name")])),
            dim=-1)
    acc = (f @ t.T).argmax(1).eq(torch.as_tensor(labels)).float().mean().item()
    assert acc > 0.6  # chance is 1/64


def test_scene_checkpoint_continues_the_shipped_one_and_is_stronger_on_scenes():
    """``world-tiny-scenes`` (the multi-label world's backbone) was continued from ``world-tiny``
    on mostly scenes: its manifest names the parent by hash, and on fresh clean scenes its
    zero-shot mAP is higher while its single-object zero-shot stays above the 80% bar."""
    from cpt.calibration.multilabel import mean_average_precision
    from cpt.trainers.clip import load_clip
    path = wc.CHECKPOINTS["world-tiny-scenes"]
    m0 = json.load(open(wc.manifest_path(wc.DEFAULT_CHECKPOINT)))
    m1 = json.load(open(wc.manifest_path(path)))
    assert m1["name"] == "world-tiny-scenes" and m1["init"]["sha256"] == m0["sha256"]
    assert m1["sha256"] == wc.sha256_file(path) and m1["zero_shot_accuracy"] >= 80.0
    assert m1["scene_map"] > m0["scene_map"]
    clip = load_clip("world-tiny-scenes")
    assert clip.source["file"] == path
    imgs, labs, _ = world.generate_scene_pool(7, 300, stream="scene_test")  # not the eval seed 0
    y = np.array([world.multi_hot(x) for x in labs])
    maps = []
    for model in (wc.load_world_clip()[0], clip.model):
        with torch.no_grad():
            f = torch.nn.functional.normalize(model.encode_image(wc.images_to_tensor(imgs)), dim=-1)
            t = torch.nn.functional.normalize(model.encode_text(
                wc.get_world_tokenizer()(["a photo of a %s." % n for n in world.class_names("name")])), dim=-1)
        maps.append(mean_average_precision((f @ t.T).numpy(), y))
    assert maps[1] > maps[0] + 0.03, maps
