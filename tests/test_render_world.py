"""The rendered world (issue 17): named renderings, long-tailed rendered scenes, rendering-word
captions, the signed per-class calibration gap, and the plain world left byte-identical."""

import hashlib
import json
import os

import numpy as np
import pytest

from cpt.calibration.multilabel import signed_class_calibration
from cpt.datasets import world
from cpt.datasets.world import draw as world_draw


def _h(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def test_plain_and_cast_world_are_unchanged():
    # digests computed with the generator before renderings were added (commit 5f87cb7)
    assert _h(world.generate_class_balanced(0, "test", 2, "clean")[0]) == "149cdb602121f06a"
    assert _h(world.generate_class_balanced(0, "test", 2, "cast")[0]) == "354a095cae26edf9"
    assert _h(world.generate_scene_pool(0, 20, stream="scene_test", variant="cast0.2")[0]) == \
        "f32922331911a81f"
    r = np.random.default_rng(3)
    caps = [world.pretrain_caption(lab, {"size_word": "small", "texture": "plain"}, r) for lab in range(3)]
    assert caps == ["the watt.", "the red triangle.", "a letsgo, a red cross."]


def test_rendering_is_seeded_recorded_and_changes_the_pixels():
    img, lab, meta, _ = world.single_sample(0, "test", 4, "vintage", label=9)
    again = world.single_sample(0, "test", 4, "vintage", label=9)[0]
    clean, _, clean_meta, _ = world.single_sample(0, "test", 4, "clean", label=9)
    assert img.tobytes() == again.tobytes()
    assert meta["rendering"] == "vintage" and clean_meta["rendering"] is None
    # same key, same nuisances: the rendering is the global grade plus the object's dye shift
    assert meta["radius"] == clean_meta["radius"] and meta["texture"] == clean_meta["texture"]
    assert np.abs(img.astype(int) - clean.astype(int)).mean() > 5
    # the grade pulls every pixel toward the tint: a mean-colour shift toward (0.72, 0.52, 0.28)
    tint = np.array(world.RENDERINGS["vintage"]["tint"]) * 255
    assert np.abs(img.reshape(-1, 3).mean(0) - tint).sum() < np.abs(clean.reshape(-1, 3).mean(0) - tint).sum()
    assert world.cast_strength("vintage") == 0.0
    with pytest.raises(ValueError, match="rendering"):
        world.cast_strength("sepia")


def test_rendering_remaps_the_palette_by_one_eight_cycle():
    for name in world.RENDERINGS:
        perm = world.RENDER_PERM[name]
        assert sorted(perm) == list(range(8))  # a bijection: the 64 classes stay distinct
        c, seen = 0, []
        for _ in range(8):  # one cycle through all 8 colours
            seen.append(c)
            c = perm[c]
        assert c == 0 and sorted(seen) == list(range(8))
        part = world.RENDER_PARTNER[name]
        assert part == [perm[world.CLASS_GRID[lab][0]] for lab in range(world.N_CLASSES)]
    assert world.RENDER_PERM["vintage"] != world.RENDER_PERM["neon"]
    # strength 1: an object's colour is its partner palette colour (before brightness jitter)
    rng_a, rng_b = world.rng_for(0, "test", 1), world.rng_for(0, "test", 1)
    col = world_draw._object_colour(0, rng_a, "vintage")
    jitter, bright = rng_b.uniform(-0.05, 0.05, size=3), rng_b.uniform(0.88, 1.08)
    np.testing.assert_allclose(col, np.clip(world.COLOUR_RGB[world.RENDER_PARTNER["vintage"][0]] * bright + jitter, 0, 1))
    assert len(world.rendering_fingerprint("vintage")) == 8
    assert world.rendering_fingerprint("vintage") != world.rendering_fingerprint("neon")


def test_long_tail_weights_alternate_halves_and_follow_zipf():
    w = world.long_tail_weights()
    assert w.shape == (64,) and abs(w.sum() - 1) < 1e-12
    ranked = np.argsort(-w)
    base = set(world.base_new_split()[0])
    assert [int(c) in base for c in ranked[:6]] == [True, False, True, False, True, False]
    srt = np.sort(w)[::-1]
    np.testing.assert_allclose(srt[0] / srt[9], 10.0)  # 1/rank with alpha 1


def test_rendered_split_is_labelled_exactly_and_long_tailed(tmp_path):
    path = world.materialize_rendered_split(str(tmp_path), "vintage", seed=0, n_train=40, n_val=3, n_test=3)
    with open(path) as f:
        split = json.load(f)
    assert split["rendering"] == "vintage"
    for k, (rel, y, cap) in enumerate(split["train"]):
        img, labs, meta = world.rendered_scene_sample(0, "train", k, "vintage")
        assert y == world.multi_hot(labs) and world.caption_labels(cap) == labs
        assert meta["rendering"] == "vintage" and 2 <= sum(y) <= 4
        from PIL import Image
        assert np.asarray(Image.open(os.path.join(tmp_path, rel))).tobytes() == img.tobytes()
    assert split["train_counts"] == list(np.sum([y for _, y, _ in split["train"]], axis=0))
    # val/test: the ShapeWorldML scenes (same labels), redrawn in the rendering
    for k, (_, y, _) in enumerate(split["test"]):
        ml_img, ml_labs, _, _ = world.scene_sample(0, "scene_test", k, "clean")
        assert y == world.multi_hot(ml_labs)
        assert world.rendered_scene_sample(0, "test", k, "vintage")[0].tobytes() != ml_img.tobytes()
    # the long tail: 1,200 training scenes' labels (label draws only, no images)
    counts = np.zeros(64)
    w = world.long_tail_weights()
    for i in range(1200):
        counts[world.sample_scene_labels(world.rng_for(0, "scene_train_lt", i), 2, 4, weights=w)] += 1
    assert counts.max() > 300 and counts.min() < 20
    with pytest.raises(ValueError, match="rendering"):
        world.rendered_scene_sample(0, "train", 0, "clean")


def test_rendered_captions_name_the_rendering_and_label_exactly():
    rng = np.random.default_rng(0)
    meta = {"rendering": "vintage", "cells": [0, 1]}
    seen = set()
    for _ in range(200):
        cap, r = world.rendered_caption([3, 40], meta, rng, p_word=0.6)
        assert world.caption_labels(cap) == [3, 40]
        assert "photo" not in cap
        assert (r == "vintage") == ("vintage" in cap)
        seen.add(r)
        if r:
            seen.add(cap.split()[0] + "|" + cap.split()[1])
    assert {None, "vintage"} <= seen
    # a plain image never draws a rendering word
    cap, r = world.rendered_caption([5], {"rendering": None, "texture": "plain", "size_word": None}, rng, 1.0)
    assert r is None and "vintage" not in cap


def test_signed_class_calibration_hand_computed():
    probs = np.array([[0.9, 0.2], [0.6, 0.7], [0.3, 0.4]])
    targets = np.array([[1, 0], [0, 1], [-1, 0]])
    gaps, groups = signed_class_calibration(probs, targets, groups={"a": [0], "b": [0, 1]})
    # class 0: pairs (0.9, 1) conf .9 right, (0.6, 0) conf .6 wrong -> .75 - .5
    # class 1: (0.2, 0) .8 right, (0.7, 1) .7 right, (0.4, 0) .6 right -> .7 - 1
    np.testing.assert_allclose(gaps, [0.25, -0.3])
    assert groups["a"] == pytest.approx(0.25) and groups["b"] == pytest.approx(-0.025)
    gaps, _ = signed_class_calibration(np.array([[0.5, 0.1]]), np.array([[-1, 1]]))
    assert np.isnan(gaps[0]) and gaps[1] == pytest.approx(0.9 - 0.0)
    with pytest.raises(ValueError, match="same shape"):
        signed_class_calibration(probs, targets[:, :1])


def test_dataset_groups_by_training_count_and_reads_the_user_folder(tmp_path):
    from cpt import datasets  # noqa: F401  (registers the datasets)
    from cpt.datasets.shapeworld import ShapeWorldRender
    from cpt.engine.config import get_cfg_default
    world.materialize_rendered_split(str(tmp_path / "shapeworldrender" / "vintage"), "vintage", seed=0,
                                     n_train=60, n_val=8, n_test=10)
    with open(tmp_path / "shapeworldrender" / "vintage" / "split_ShapeWorldRender.json") as f:
        counts = np.array(json.load(f)["train_counts"])
    for subsample, cols in (("base", range(32)), ("new", range(32, 64))):
        cfg = get_cfg_default()
        cfg.DATASET.ROOT = str(tmp_path)
        cfg.DATASET.NAME, cfg.DATASET.VARIANT = "ShapeWorldRender", "vintage"
        cfg.DATASET.SUBSAMPLE_CLASSES = subsample
        cfg.CACHE_DIR = str(tmp_path / "cache")
        ds = ShapeWorldRender(cfg)
        assert len(ds.test) == 10 and len(ds.classnames) == 32
        c = counts[list(cols)]
        assert sorted(ds.groups["medium"]) == [i for i in range(32) if 20 <= c[i] < 100]
        assert sorted(ds.groups["tail"]) == [i for i in range(32) if c[i] < 20]
        assert sum(len(v) for v in ds.groups.values()) == 32
        assert ds.captions()[0][1].shape == (64,)
    cfg.DATASET.VARIANT = "cast"
    with pytest.raises(ValueError, match="DATASET.VARIANT"):
        ShapeWorldRender(cfg)


def test_render_checkpoint_ships_with_its_manifest_and_loads():
    """``world-tiny-render``: under 8 MB, manifest hash and parents recorded, renderings listed, the
    config maps equal to the manifest's vintage map, and it loads through the backbone registry."""
    from cpt.trainers.clip import load_clip
    from cpt.trainers.clip import world as wc
    path = wc.CHECKPOINTS["world-tiny-render"]
    m = json.load(open(wc.manifest_path(path)))
    parent = json.load(open(wc.manifest_path(wc.CHECKPOINTS["world-tiny-scenes"])))
    assert os.path.getsize(path) == m["size_bytes"] < 8_000_000
    assert m["sha256"] == wc.sha256_file(path)
    stages = [m]  # a chain of continuations, each recording its parent's recipe, down to a shipped parent
    while "recipe" in stages[-1]["init"]:
        stages.append(stages[-1]["init"]["recipe"])
    assert stages[-1]["init"]["sha256"] == parent["sha256"] and len(stages) == 3
    assert [s["render_word"] for s in stages] == [0.975, 1.0, 0.75]
    assert m["name"] == "world-tiny-render" and m["renderings"] == ["vintage", "neon"]
    assert m["eval"]["vintage_scene_map_word"] > m["eval"]["vintage_scene_map_default"]
    import yaml
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for rel in ("ZeroshotCLIP/world_render.yaml", "ZeroshotCLIP/world_render_word.yaml", "CoOp/world_render_bce.yaml",
                "TaIDPT/world_render.yaml"):
        cfg = yaml.safe_load(open(os.path.join(root, "configs", "trainers", rel)))
        sub = cfg["TRAINER"][{"ZeroshotCLIP": "ZSCLIP", "CoOp": "COOP", "TaIDPT": "TAIDPT"}[rel.split("/")[0]]]
        assert sub["PROB_MAP"] == "vintage" and "BCE_SCALE" not in sub and "BCE_BIAS" not in sub
        assert cfg["MODEL"]["BACKBONE"]["NAME"] == "world-tiny-render"
    assert wc.manifest_probability_map(path, "vintage") == (m["vintage_probability_map"]["scale"],
                                                            m["vintage_probability_map"]["bias"])
    assert load_clip("world-tiny-render").source["file"] == path


def test_pretraining_positives_respect_the_rendering():
    import importlib.util
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("_pretrain", os.path.join(root, "scripts", "pretrain_world_clip.py"))
    pre = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pre)
    pool, scenes = pre.build_pools(1, 40, 20, ["vintage", "neon"], 0.5)
    rend = [m["rendering"] for m in pool[2]]
    assert rend.count(None) == 20 and rend.count("vintage") == 10 and rend.count("neon") == 10
    x, caps, pos = pre.make_batch(np.random.default_rng(0), pool, scenes, 64, 0.5, 0.4, p_word=0.75)
    words = [("vintage" if "vintage" in c else "neon" if "neon" in c else None) for c in caps]
    assert "vintage" in words and "neon" in words and None in words

    def frame(img):  # an image's rendering, read from its frame colour (corner pixel)
        corner = img[0, 0].astype(float) / 255
        for name, r in world.RENDERINGS.items():
            if np.abs(corner - np.array(r["tint"])).max() < 0.2:
                return name
        return None
    img_r = [frame(img) for img in x]
    assert bool(pos.diagonal().all())  # each image's own caption
    # a caption naming a rendering is a positive only of images drawn in that rendering
    for j, w in enumerate(words):
        if w is not None:
            assert all(img_r[i] == w for i in range(len(caps)) if pos[i, j])
            assert img_r[j] == w
    # without renderings, build_pools gives exactly the plain pools
    plain = pre.build_pools(1, 10, 6)
    ref = (world.generate_single_pool(1, 10, stream="pretrain"), world.generate_scene_pool(1, 6, stream="pretrain_scene"))
    assert plain[0][0].tobytes() == ref[0][0].tobytes() and plain[1][1] == ref[1][1]


def test_continuation_records_a_scratch_parent_recipe(tmp_path):
    """``--init`` of a scratch checkpoint with its manifest records the parent's recipe (and so the
    chain); a shipped parent is recorded by file and hash only."""
    import importlib.util
    import shutil

    from cpt.trainers.clip import world as wc
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("_pretrain", os.path.join(root, "scripts", "pretrain_world_clip.py"))
    pre = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pre)
    shipped = wc.CHECKPOINTS["world-tiny-scenes"]
    assert pre.init_record(shipped) == {"file": "world_tiny_scenes.pt", "sha256": wc.sha256_file(shipped)}
    stage = tmp_path / "stage1.pt"
    shutil.copy(shipped, stage)
    shutil.copy(wc.manifest_path(shipped), wc.manifest_path(str(stage)))
    rec = pre.init_record(str(stage))
    parent = json.load(open(wc.manifest_path(shipped)))
    assert rec["file"] == "stage1.pt" and rec["sha256"] == parent["sha256"]
    assert rec["recipe"]["steps"] == parent["steps"] and rec["recipe"]["init"] == parent["init"]
    assert "eval" not in rec["recipe"] and set(rec["recipe"]) <= set(pre.RECIPE_KEYS)


def test_class_calibration_script_prints_group_gaps(tmp_path, capsys):
    import importlib.util
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("_cc", os.path.join(root, "scripts", "class_calibration.py"))
    cc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cc)
    counts = np.zeros(4, dtype=int)
    counts[:2] = [150, 5]  # base classes 0, 1: head, tail
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train_counts": counts.tolist()}))
    logits = np.log(np.array([[0.9, 0.2], [0.6, 0.7], [0.3, 0.4]]) / (1 - np.array([[0.9, 0.2], [0.6, 0.7], [0.3, 0.4]])))
    labels = np.array([[1, 0], [0, 1], [0, 0]])
    for phase in ("train_base", "test_new"):
        d = tmp_path / "out" / "base2new" / phase / "shapeworld_render" / "shots_16" / "CoOp" / "cfg" / "seed1"
        d.mkdir(parents=True)
        np.savez(d / "outputs_test.npz", scores=logits, labels=labels, index=np.arange(3))
        (d / "results.json").write_text(json.dumps({"status": "finished",  # as a real run writes it
                                                    "metrics": {"mAP": 50.0, "ece": 1.5, "accuracy": 80.0}}))
    cc.main([str(tmp_path / "out"), "--counts", str(split)])
    out = capsys.readouterr().out
    # class 0: conf (.9 + .6 + .7) / 3 = .7333, acc 2/3 -> +6.67%; class 1: .7 - 1 -> -30%
    row = [line for line in out.splitlines() if line.startswith("| CoOp/cfg |")]
    assert row[0].split("|")[2:7] == [" 6.67 ", " - ", " -30.00 ", " -11.67 ", " -11.67 "]
    assert row[1].split("|")[2:4] == [" 50.00 ", " 50.00 "]
