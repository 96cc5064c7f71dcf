"""The short text path (``MODEL.BACKBONE.SHORT_TEXT``): every trainer's logits, loss and gradients
of the learnable parameters are the same with and without it (1e-5 relative, gradients 1e-4), on
the world's tiny CLIP and on a randomly initialised ViT-B/16-sized CLIP; towers where it is not
exact keep the full context; a world base-to-new CoOp run writes the same metrics either way."""
import json
import os

import pytest
import torch
import torch.nn.functional as F

from cpt import trainers  # noqa: F401  (registers the trainers)
from cpt.trainers.clip import ClipBackbone, bpe_tokenizer, encode_prompts, load_clip
from cpt.trainers.taidpt import softmax_pool
from tests.engine_fixtures import write_fixture_tree
from tests.runs import train_main

TOL = 1e-5
# Gradients sum many per-image terms that partly cancel, so their float32 noise relative to their
# largest entry is larger: CoCoOp's meta-net and context gradients differ by up to 1.8e-5 on one
# AVX-512 machine (every other trainer's by under 5e-6); a wrong cut moves features by over 1e-3.
GRAD_TOL = 1e-4

# (trainer, extra opts): every trainer's text path, DOR outlier words, TCPT's zero-shot features,
# class-specific context with the class name in front, templates of the ensemble.
TINY_CASES = [
    ("CoOp", ["TRAINER.COOP.CTX_INIT", "a photo of a", "CALIB.METHOD", "['dor']", "CALIB.DOR.NUM_OUTLIERS", "4"]),
    ("CoOp", ["TRAINER.COOP.N_CTX", "4", "TRAINER.COOP.CSC", "True", "TRAINER.COOP.CLASS_TOKEN_POSITION", "front"]),
    ("CoCoOp", ["TRAINER.COCOOP.N_CTX", "4"]),
    ("KgCoOp", ["TRAINER.KGCOOP.CTX_INIT", "a photo of a", "CALIB.METHOD", "['tcpt']"]),
    ("MaPLe", ["TRAINER.MAPLE.PROMPT_DEPTH", "3", "CALIB.METHOD", "['dor']", "CALIB.DOR.NUM_OUTLIERS", "4"]),
    ("TaIDPT", ["TRAINER.TAIDPT.N_CTX", "4"]),
    ("ZeroshotCLIP2", []),
]
VIT_CASES = [
    ("CoOp", ["TRAINER.COOP.N_CTX", "16"]),
    ("CoCoOp", ["TRAINER.COCOOP.N_CTX", "4"]),
    ("KgCoOp", ["TRAINER.KGCOOP.CTX_INIT", "a photo of a", "CALIB.METHOD", "['tcpt']"]),
    ("MaPLe", ["TRAINER.MAPLE.PROMPT_DEPTH", "9"]),
    ("TaIDPT", ["TRAINER.TAIDPT.N_CTX", "4"]),
    ("ZeroshotCLIP", []),
]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data"))
    write_fixture_tree(path, per_class=(2, 1, 1), size=32)
    return path


def build(root, out, name, short, opts, backbone="world-tiny", size=32, batch=4):
    """A trainer on the fixture, built only (``--no-train``); seeded so both builds are identical."""
    argv = ["--root", root, "--output-dir", out, "--trainer", name, "--seed", "1", "--no-train", *opts,
            "DATASET.NAME", "EngineFixture", "INPUT.SIZE", f"({size}, {size})", "INPUT.TRANSFORMS",
            "('normalize',)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", str(batch),
            "OPTIM.NAME", "sgd", "MODEL.BACKBONE.NAME", backbone, "TEST.RELIABILITY_DIAGRAM", "False",
            "MODEL.BACKBONE.SHORT_TEXT", str(short)]
    if backbone != "world-tiny":
        argv += ["MODEL.BACKBONE.PRETRAINED", "False"]
    return train_main(argv)


def rel_diff(a, b):
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))


def step(t, batch):
    """(logits, loss, gradients of the learnable parameters) of one training step, no update."""
    torch.manual_seed(0)
    logits = None
    with torch.no_grad():
        if t.learner is None:
            return t.model_inference(batch["img"].to(t.device))["logits"], None, {}
    t.set_model_mode("train")
    with torch.no_grad():
        logits = t.forward_logits(t.parse_batch_train(batch)[0])["logits"]
    t.batch_idx, t.num_batches = 0, 10 ** 6
    for p in t.learner.parameters():
        p.grad = None
    t._backward_and_update = lambda loss: loss.backward()
    logs = t.forward_backward(batch)
    grads = {n: p.grad.clone() for n, p in t.learner.named_parameters() if p.requires_grad}
    return logits, logs["loss"], grads


def check_trainer(root, tmp_path, name, opts, **kw):
    full = build(root, str(tmp_path / "full"), name, False, opts, **kw)
    short = build(root, str(tmp_path / "short"), name, True, opts, **kw)
    assert not full.clip.short_text and short.clip.short_text and short.clip.short_text_exact
    ids = short.learner.tokenized_prompts if short.learner is not None else short.clip.tokenize(
        [short.template.format(c) for c in short.classnames])
    n_full = ids.shape[1]
    assert full.clip.text_keep_length(ids) == n_full
    assert short.clip.text_keep_length(ids) < n_full // 2  # the short run really is shorter
    batch = next(iter(short.train_loader_x))
    lf, loss_f, gf = step(full, batch)
    ls, loss_s, gs = step(short, batch)
    assert rel_diff(ls, lf) <= TOL, (name, rel_diff(ls, lf))
    if loss_f is not None:
        assert abs(loss_s - loss_f) <= TOL * max(1.0, abs(loss_f)), (name, loss_s, loss_f)
    assert gf and set(gs) == set(gf) or full.learner is None
    for n in gf:
        assert gf[n].abs().max() > 0, (name, n)  # every learnable tensor gets a gradient
        assert rel_diff(gs[n], gf[n]) <= GRAD_TOL, (name, n, rel_diff(gs[n], gf[n]))
    for attr in ("zs_text_features", "outlier_zs", "text_features"):
        a, b = getattr(short, attr, None), getattr(full, attr, None)
        if torch.is_tensor(b):
            assert rel_diff(a, b) <= TOL, (name, attr)


@pytest.mark.parametrize("name,opts", TINY_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(TINY_CASES)])
def test_every_trainer_same_with_and_without_short_text_tiny(root, tmp_path, name, opts):
    check_trainer(root, tmp_path, name, opts)


@pytest.mark.parametrize("name,opts", VIT_CASES, ids=[n for n, _ in VIT_CASES])
def test_every_trainer_same_with_and_without_short_text_vit_b16(root, tmp_path, name, opts):
    check_trainer(root, tmp_path, name, opts, backbone="ViT-B/16", size=224, batch=2)


def _toggle(clip, on):
    clip.short_text = on
    return clip


@pytest.mark.parametrize("backbone", ["world-tiny", "ViT-B/16"])
def test_caption_token_features_seen_by_the_local_branch_unchanged(backbone):
    """TaI-DPT's caption branch: global feature and token features at positions 1..EOT (what the
    local branch pools over) are the same; the pooled local score too."""
    clip = load_clip(backbone, pretrained=backbone == "world-tiny")
    caps = ["a dog on a red sofa", "two cats", "a very long caption about a green bird sitting on a branch"]
    ids = clip.tokenize(caps)
    out = {}
    for on in (False, True):
        with torch.no_grad():
            out[on] = _toggle(clip, on).encode_text_embeddings(clip.embed_tokens(ids), ids, return_tokens=True)
    assert clip.text_keep_length(ids) < ids.shape[1]
    (gf, tf), (gs, ts) = out[False], out[True]
    assert ts.shape == tf.shape
    eot = clip.eot_positions(ids)
    mask = (torch.arange(ids.shape[1])[None] >= 1) & (torch.arange(ids.shape[1])[None] <= eot[:, None])
    assert rel_diff(gs, gf) <= TOL and rel_diff(ts[mask], tf[mask]) <= TOL
    text_l = F.normalize(torch.randn(4, clip.embed_dim, generator=torch.Generator().manual_seed(0)), dim=-1)
    pooled = [softmax_pool(F.normalize(t, dim=-1) @ text_l.t(), 50.0, mask) for t in (tf, ts)]
    assert rel_diff(pooled[1], pooled[0]) <= TOL


def _tiny_tower(**text_cfg):
    from open_clip.model import CLIP
    torch.manual_seed(0)
    vision = {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1, "head_width": 16}
    model = CLIP(embed_dim=32, vision_cfg=vision,
                 text_cfg=dict({"context_length": 16, "width": 32, "heads": 2, "layers": 2}, **text_cfg))
    return ClipBackbone(model, bpe_tokenizer(16))


def test_non_causal_tower_keeps_the_full_context():
    causal = _tiny_tower()
    assert causal.short_text_exact
    for kw in ({"no_causal_mask": True}, {"pool_type": "last"}):
        clip = _tiny_tower(**kw)
        assert clip.short_text and not clip.short_text_exact, kw
        ids = clip.tokenize(["a cat", "a photo of a dog"])
        assert clip.text_keep_length(ids) == ids.shape[1]
    # the decision matters: cutting the non-causal tower would change its features
    clip = _tiny_tower(no_causal_mask=True)
    ids = clip.tokenize(["a cat", "a photo of a dog"])
    with torch.no_grad():
        ref = clip.encode_text(ids)
        clip.short_text_exact = True  # forced, wrongly
        cut = clip.encode_text(ids)
    assert rel_diff(cut, ref) > 1e-3


def test_prompt_learner_chunks_and_deep_prompts_past_eot_kept():
    """Deep prompts whose slice ends past every EOT keep the positions they replace."""
    clip = load_clip("world-tiny")
    ids = clip.tokenize(["a cat", "a dog"])
    x = clip.embed_tokens(ids)
    deep = [torch.randn(8, clip.text_width, generator=torch.Generator().manual_seed(1))]
    res = {}
    for on in (False, True):
        with torch.no_grad():
            res[on] = encode_prompts(_toggle(clip, on), x, ids, deep_prompts=deep, max_rows=1)
    assert clip.text_keep_length(ids, 9) == 9
    assert rel_diff(res[True], res[False]) <= TOL


def test_world_base_to_new_coop_same_results_with_and_without_short_text(tmp_path):
    """The user's loop (train on base, test on new) on the world: the same results.json metrics."""
    import shutil
    import subprocess
    import sys
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATASETS", "SEEDS", "CFG", "CALIB", "SHOTS", "OPTS", "GPU", "LOAD_EPOCH", "DRY_RUN")}
    env.update(PYTHON=sys.executable, DATA=str(tmp_path / "data"), DATASETS="shapeworld", CFG="world_ep50",
               SHOTS="1", SEEDS="1", OMP_NUM_THREADS="1")
    os.makedirs(env["DATA"])
    metrics = {}
    for short in ("False", "True"):
        env.update(OUTPUT=str(tmp_path / f"out-{short}"), CPT_CACHE_DIR=str(tmp_path / f"cache-{short}"),
                   OPTS=f"OPTIM.MAX_EPOCH 2 DATALOADER.TEST.BATCH_SIZE 400 MODEL.BACKBONE.SHORT_TEXT {short}")
        for script in ("base2new_train_coop_datasets.sh", "base2new_test_coop_datasets.sh"):
            p = subprocess.run(["bash", os.path.join("scripts", "coop", script)], env=env, cwd=repo,
                               capture_output=True, text=True, timeout=900)
            assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        for phase in ("train_base", "test_new"):
            path = os.path.join(env["OUTPUT"], "base2new", phase, "shapeworld", "shots_1", "CoOp", "world_ep50",
                                "seed1", "results.json")
            with open(path) as f:
                res = json.load(f)
            assert res["status"] == "finished"
            metrics[short, phase] = res["metrics"]
    for phase in ("train_base", "test_new"):
        a, b = metrics["False", phase], metrics["True", phase]
        assert set(a) == set(b) and len(a) >= 5
        for k in a:
            assert b[k] == pytest.approx(a[k], abs=1e-4), (phase, k, a[k], b[k])
