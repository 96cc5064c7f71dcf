"""Prompt-learner trainers on a randomly initialised tiny CLIP (world-tiny architecture) and a
5-class fixture dataset: zero-shot equivalences, the contract over every registered trainer
(build, train, save, load, evaluate), the feature cache and text features once per evaluation."""
import os

import pytest
import torch

from cpt import trainers  # noqa: F401  (registers the trainers)
from cpt.engine.checkpoint import latest_checkpoint
from cpt.engine.trainer import TRAINER_REGISTRY
from tests.engine_fixtures import write_fixture_tree
from tests.runs import INIT, run

CLIP_TRAINERS = sorted(n for n, c in TRAINER_REGISTRY._obj_map.items()
                       if c.__module__.startswith("cpt.trainers."))

@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data"))
    write_fixture_tree(path, per_class=(6, 2, 4), size=32)
    return path


def test_initial_coop_and_kgcoop_equal_zero_shot(root, tmp_path):
    zs = run(root, str(tmp_path / "zs"), "ZeroshotCLIP", *INIT["ZeroshotCLIP"], flags=["--eval-only"])
    ref = zs.last_outputs["logits"]
    for name in ("CoOp", "KgCoOp", "MaPLe"):
        extra = INIT[name] if name != "MaPLe" else ["TRAINER.MAPLE.PROMPT_DEPTH", "1"]
        t = run(root, str(tmp_path / name), name, *extra, epochs=0)  # MAX_EPOCH 0: initial prompts
        if name == "MaPLe":  # text side only: the appended visual prompts change the image features
            diff = (t.class_text_features() - zs.text_features).abs().max()
        else:
            diff = (t.last_outputs["logits"] - ref).abs().max()
            assert torch.equal(t.last_outputs["labels"], zs.last_outputs["labels"])
        assert diff < 1e-5, (name, float(diff))
        if name == "KgCoOp":  # the knowledge term is 0 before training
            with torch.no_grad():
                assert float(t.method_losses({"text_features": t.class_text_features()}, None)["loss_kg"]) < 1e-6


@pytest.mark.parametrize("name", CLIP_TRAINERS)
def test_contract_train_save_load_eval(root, tmp_path, name):
    out = str(tmp_path / "run")
    t = run(root, out, name, *INIT.get(name, []))
    res = t.last_results["test"]
    for key in ("accuracy", "ece", "mce", "adaptive_ece", "piece"):
        assert key in res and 0.0 <= res[key] <= 100.0, (key, res)
    assert t.last_outputs["features"].shape == (20, t.clip.embed_dim)
    if name.startswith("ZeroshotCLIP"):
        assert t.get_model_names() == []
        return
    # checkpoint: learnable parameters only; loading it reproduces the logits exactly
    ckpt = torch.load(latest_checkpoint(os.path.join(out, "prompt_learner")), weights_only=False)
    learnable = {n for n, p in t.learner.named_parameters() if p.requires_grad}
    assert set(ckpt["state_dict"]) == learnable
    assert not any(k.startswith(("token_", "clip", "model")) for k in ckpt["state_dict"])
    ev = run(root, str(tmp_path / "eval"), name, *INIT.get(name, []),
             flags=["--eval-only", "--model-dir", out, "--load-epoch", "1"])
    assert torch.equal(ev.last_outputs["logits"], t.last_outputs["logits"])
    # training moved the context away from its initialisation ("a photo of a"), so loading restored it
    clip = t.clip
    init_ctx = clip.embed_tokens(clip.tokenize("a photo of a"))[0, 1:1 + t.learner.n_ctx].float()
    assert not torch.allclose(ckpt["state_dict"]["ctx"], init_ctx.cpu(), atol=1e-4)
    assert torch.equal(ev.learner.ctx.detach().cpu(), ckpt["state_dict"]["ctx"])
    if name == "MaPLe":  # PROMPT_DEPTH 3: ctx (2 x d_t) + 2 deep text prompts + 3 Linear(d_t, d_v)
        n_learn = sum(p.numel() for p in t.learner.parameters())
        d_t, d_v = clip.text_width, clip.vision_width
        assert n_learn == 2 * d_t + 2 * 2 * d_t + 3 * (d_t * d_v + d_v)
        size = os.path.getsize(latest_checkpoint(os.path.join(out, "prompt_learner")))
        # fp32 weights + SGD momentum + RNG state; CLIP itself would be 4 bytes x its parameters
        assert size < 2 * 4 * n_learn + 100_000 < 4 * sum(p.numel() for p in clip.parameters()) / 10


def test_feature_cache_and_text_features_once_per_evaluation(root, tmp_path, monkeypatch):
    plain = run(root, str(tmp_path / "a"), "CoOp", *INIT["CoOp"], "TEST.CACHE_FEATURES", "False", epochs=0)
    n = []
    orig = plain.class_text_features
    monkeypatch.setattr(plain, "class_text_features", lambda: n.append(1) or orig())
    plain.test()
    assert len(plain.test_loader) == 2 and n == [1]  # two test batches, text features once
    cached = run(root, str(tmp_path / "b"), "CoOp", *INIT["CoOp"], "TEST.CACHE_FEATURES", "True", epochs=0)
    files = [f for f in os.listdir(os.path.join(os.environ["CPT_CACHE_DIR"], "features")) if f.endswith(".pt")]
    assert len(files) == 1
    assert torch.allclose(cached.last_outputs["logits"], plain.last_outputs["logits"], atol=1e-5)
    # a second method and evaluation read the cache: the image encoder is not run again
    kg = run(root, str(tmp_path / "c"), "KgCoOp", *INIT["KgCoOp"], "TEST.CACHE_FEATURES", "True", epochs=0)
    calls = []
    monkeypatch.setattr(kg.clip, "encode_image", lambda *a, **k: calls.append(1))
    kg.test()
    assert calls == []
    assert torch.allclose(kg.last_outputs["logits"], plain.last_outputs["logits"], atol=1e-5)


def test_regularizer_inputs_checked_at_build(root, tmp_path):
    with pytest.raises(ValueError, match="trainer 'CoCoOp' cannot provide .*'tcpt' needs \\['text_features'\\]"):
        run(root, str(tmp_path / "x"), "CoCoOp", *INIT["CoCoOp"], "CALIB.METHOD", "['tcpt']")
    t = run(root, str(tmp_path / "y"), "KgCoOp", *INIT["KgCoOp"], "CALIB.METHOD", "['tcpt', 'penalty']",
            epochs=0)
    t.batch_idx, t.num_batches = 0, 2
    t.set_model_mode("train")
    logs = t.forward_backward(next(iter(t.train_loader_x)))
    # the regularizers and the method's own term are all in the loss
    assert {"loss_task", "tcpt_margin", "tcpt_moment", "penalty", "loss_kg", "loss", "acc"} <= set(logs)
    assert logs["loss"] == pytest.approx(logs["loss_task"] + logs["tcpt_margin"] + logs["tcpt_moment"]
                                         + logs["penalty"] + logs["loss_kg"], rel=1e-5)
    # at the hand-crafted initialisation the moment term and the knowledge term vanish
    assert logs["tcpt_moment"] < 1e-6 and logs["loss_kg"] < 1e-6


def test_every_trainer_config_loads_with_the_trainer_keys():
    import glob

    from cpt import datasets
    from cpt.engine.config import get_cfg_default
    from cpt.trainers.config import extend_cfg
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "trainers")
    node = {"CoOp": "COOP", "CoCoOp": "COCOOP", "KgCoOp": "KGCOOP", "MaPLe": "MAPLE", "ZeroshotCLIP": "ZSCLIP",
            "TaIDPT": "TAIDPT"}
    files = sorted(glob.glob(os.path.join(folder, "*", "*.yaml")))
    assert len(files) >= 11
    for path in files:
        cfg = datasets.extend_cfg(extend_cfg(get_cfg_default()))
        cfg.merge_from_file(path)
        trainer = os.path.basename(os.path.dirname(path))
        assert trainer in node and cfg.TRAINER[node[trainer]].PREC in ("fp16", "fp32"), path
        assert cfg.MODEL.BACKBONE.NAME in ("ViT-B/16", "world-tiny", "world-tiny-scenes", "world-tiny-render", "RN50"), path
    # base-to-new defaults of docs/design.md section 4
    cfg = extend_cfg(get_cfg_default())
    cfg.merge_from_file(os.path.join(folder, "MaPLe", "vit_b16_c2_ep5_batch4_2ctx.yaml"))
    assert (cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH, cfg.DATALOADER.TRAIN_X.BATCH_SIZE) == (0.0035, 5, 4)
    assert (cfg.TRAINER.MAPLE.N_CTX, cfg.TRAINER.MAPLE.PROMPT_DEPTH) == (2, 9)
