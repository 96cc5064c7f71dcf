"""The CLIP adapter (trainers/clip/): name resolution, offline weights, the shared text path,
prompt layouts and the deep-prompt hooks. Runs on randomly initialised tiny CLIPs."""
import json
import os

import pytest
import torch
import torch.nn.functional as F

from cpt.trainers.clip import (
    BackboneError,
    PretrainedWeightsNotFound,
    PromptLearner,
    effective_precision,
    encode_prompts,
    find_pretrained_file,
    load_clip,
)
from cpt.trainers.clip import loading as clip_mod
from tests.clip_fixtures import rn_clip_file

NAMES = ["gloss", "red circle", "blue_square"]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_clip("world-tiny", pretrained=False)


def _rows(clip, ids):
    return [clip.tokenizer.decode(r[r > 0].tolist()).replace("<start_of_text>", "").replace("<end_of_text>", "").strip()
            for r in ids]


def test_shared_text_path_and_image_path_match_open_clip(tiny):
    ids = tiny.tokenize([f"a photo of a {n.replace('_', ' ')}." for n in NAMES])
    ours = tiny.encode_text(ids)
    ref = tiny.model.encode_text(ids)
    assert torch.allclose(ours, ref, atol=1e-5)
    img = torch.randn(3, 3, 32, 32)
    plain = tiny.encode_image(img)
    pooled, tokens = tiny.encode_image(img, return_tokens=True)
    assert torch.allclose(plain, tiny.model.encode_image(img), atol=1e-6)
    assert torch.allclose(pooled, plain, atol=1e-5)
    assert tokens.shape == (3, 16, tiny.embed_dim)  # 32 px / patch 8 = 4 x 4 patches


def test_context_init_reproduces_the_hand_crafted_prompt(tiny):
    zs = tiny.zero_shot_text_features(NAMES, "a photo of a {}.")
    pl = PromptLearner(tiny, NAMES, n_ctx=None, ctx_init="a photo of a")
    assert pl.n_ctx == 4 and pl.ctx.dtype == torch.float32 and pl.ctx.requires_grad
    feats = F.normalize(encode_prompts(tiny, pl(), pl.tokenized_prompts), dim=-1)
    assert (feats - zs).abs().max() < 1e-5
    # MaPLe's semantics: 2 learnable tokens, the rest of CTX_INIT stays fixed text
    pl2 = PromptLearner(tiny, NAMES, n_ctx=2, ctx_init="a photo of a")
    assert pl2.ctx.shape == (2, tiny.text_width)
    feats2 = F.normalize(encode_prompts(tiny, pl2(), pl2.tokenized_prompts), dim=-1)
    assert (feats2 - zs).abs().max() < 1e-5


@pytest.mark.parametrize("position,expected", [
    ("end", ["x x x x gloss .", "x x x x red circle .", "x x x x blue square ."]),
    ("middle", ["x x gloss x x .", "x x red circle x x .", "x x blue square x x ."]),
    ("front", ["gloss x x x x .", "red circle x x x x .", "blue square x x x x ."]),
])
def test_class_token_positions_give_the_right_layout(tiny, position, expected):
    torch.manual_seed(1)
    pl = PromptLearner(tiny, NAMES, n_ctx=4, class_token_position=position)
    assert _rows(tiny, pl.token_layout()) == expected
    # the embeddings follow the same layout: context vectors sit where the x tokens are
    emb = pl()
    for c, row in enumerate(pl.token_layout()):
        ctx_pos = (row == tiny.tokenize("x")[0, 1]).nonzero().flatten()
        assert torch.equal(emb[c, ctx_pos], pl.ctx)
    # EOT stays where the token ids say
    assert torch.equal(tiny.eot_positions(pl.token_layout()), tiny.eot_positions(pl.tokenized_prompts))


def test_class_specific_context_and_per_image_shift(tiny):
    torch.manual_seed(2)
    pl = PromptLearner(tiny, NAMES, n_ctx=3, csc=True)
    assert pl.ctx.shape == (3, 3, tiny.text_width)
    emb = pl()
    assert torch.equal(emb[1, 1:4], pl.ctx[1])
    gen = PromptLearner(tiny, NAMES, n_ctx=3)
    shift = torch.randn(2, tiny.text_width)
    per_image = gen(ctx_shift=shift)                      # (B, C, L, D)
    assert per_image.shape == (2, 3, tiny.context_length, tiny.text_width)
    assert torch.allclose(per_image[1, 2, 1:4], gen.ctx + shift[1])
    feats = encode_prompts(tiny, per_image, gen.tokenized_prompts, max_rows=4)  # chunked
    assert torch.allclose(feats[1], encode_prompts(tiny, per_image[1], gen.tokenized_prompts), atol=1e-5)


def _block_inputs(blocks, run):
    """Inputs (batch-first) of every block during ``run()``."""
    seen = {}
    hooks = [b.register_forward_pre_hook(lambda m, args, kw, i=i: seen.__setitem__(i, args[0].detach()),
                                         with_kwargs=True) for i, b in enumerate(blocks)]
    try:
        out = run()
    finally:
        for h in hooks:
            h.remove()
    return out, seen


def test_deep_text_prompts_replace_the_context_tokens_at_each_layer(tiny):
    # Positions 1..n of a causal text tower only see [SOS, ctx], identical for every class, so a
    # deep prompt equal to the hidden state it replaces must leave the features unchanged.
    pl = PromptLearner(tiny, NAMES, n_ctx=2, ctx_init="a photo of a")
    emb, ids = pl(), pl.tokenized_prompts
    bf = getattr(tiny.model.transformer, "batch_first", False)
    base, seen = _block_inputs(tiny.model.transformer.resblocks, lambda: tiny.encode_text_embeddings(emb, ids))
    state = {i: (x if bf else x.transpose(0, 1)) for i, x in seen.items()}
    deep = [state[i][0, 1:3] for i in range(1, 4)]  # depth 4 = layers 1..3
    assert torch.allclose(tiny.encode_text_embeddings(emb, ids, deep_prompts=deep), base, atol=1e-5)
    # a prompt at layer 2 that differs changes the output; so does one at layer 3
    for j in (1, 2):
        changed = list(deep)
        changed[j] = changed[j] + torch.randn_like(changed[j])  # (a constant shift is LN-invariant)
        assert not torch.allclose(tiny.encode_text_embeddings(emb, ids, deep_prompts=changed), base, atol=1e-3)


def test_deep_visual_prompts_replace_the_appended_tokens(tiny):
    torch.manual_seed(3)
    img = torch.randn(2, 3, 32, 32)
    vp = torch.randn(2, tiny.vision_width) * 0.1
    visual = tiny.model.visual
    bf = getattr(visual.transformer, "batch_first", False)
    shallow, seen = _block_inputs(visual.transformer.resblocks, lambda: tiny.encode_image(img, visual_prompts=vp))
    assert not torch.allclose(shallow, tiny.encode_image(img), atol=1e-4)  # prompts are seen
    state = {i: (x if bf else x.transpose(0, 1)) for i, x in seen.items()}
    # prompt tokens attend to the image, so the states they would have are per image (B, n, D)
    deep = [state[i][:, -2:] for i in range(1, 5)]
    assert torch.allclose(tiny.encode_image(img, visual_prompts=vp, deep_visual_prompts=deep), shallow, atol=1e-5)
    changed = list(deep)
    changed[3] = changed[3] + torch.randn_like(changed[3])
    assert not torch.allclose(tiny.encode_image(img, visual_prompts=vp, deep_visual_prompts=changed), shallow,
                              atol=1e-3)
    _, tokens = tiny.encode_image(img, visual_prompts=vp, return_tokens=True)
    assert tokens.shape[1] == 16  # prompt tokens are not patch tokens


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(BackboneError) as e:
        load_clip("ViT-B/17")
    msg = str(e.value)
    assert "MODEL.BACKBONE.NAME 'ViT-B/17'" in msg and "ViT-B/16" in msg and "open_clip.list_models()" in msg


def test_missing_pretrained_weights_say_where_they_were_looked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(clip_mod, "hf_cache_dir", lambda: str(tmp_path / "hf"))
    monkeypatch.setattr(clip_mod, "url_cache_dir", lambda: str(tmp_path / "clip"))
    with pytest.raises(PretrainedWeightsNotFound) as e:
        load_clip("ViT-B/16")
    msg = str(e.value)
    assert "'ViT-B-16'" in msg and "'openai'" in msg
    assert str(tmp_path / "hf") in msg and str(tmp_path / "clip" / "ViT-B-16.pt") in msg
    assert "PRETRAINED_TAG" in msg and "nothing is downloaded" in msg
    # a file in the Hugging Face cache layout is found without any network access
    snap = tmp_path / "hf" / "models--timm--vit_base_patch16_clip_224.openai" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "open_clip_model.safetensors").write_bytes(b"x")
    assert find_pretrained_file("ViT-B-16", "openai") == str(snap / "open_clip_model.safetensors")
    with pytest.raises(BackboneError, match="known tags"):
        find_pretrained_file("ViT-B-16", "no-such-tag")


def test_open_clip_name_with_a_local_file_as_tag_and_file_as_name(tmp_path):
    import open_clip
    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32,
                                           "patch_size": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
    (tmp_path / "tiny-adapter-test.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(str(tmp_path / "tiny-adapter-test.json"))
    torch.manual_seed(4)
    model = open_clip.model.CLIP(**cfg)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    ids = open_clip.tokenizer.SimpleTokenizer(context_length=16)(["a photo of a gloss."])
    ref = model.encode_text(ids)
    clip = load_clip("tiny-adapter-test", pretrained_tag=str(tmp_path / "w.pt"))
    assert clip.context_length == 16 and clip.text_width == 32 and clip.vision_width == 64
    assert torch.allclose(clip.encode_text(ids), ref, atol=1e-5)
    with pytest.raises(BackboneError, match="needs MODEL.BACKBONE.PRETRAINED_TAG"):
        load_clip("tiny-adapter-test")
    # a {"model_cfg", "state_dict"} file as the name
    torch.save({"model_cfg": cfg, "state_dict": model.state_dict()}, tmp_path / "full.pt")
    clip2 = load_clip(str(tmp_path / "full.pt"))
    assert torch.allclose(clip2.encode_text(ids), ref, atol=1e-5)
    # an OpenAI-format state dict as the name: architecture inferred (64-wide heads, QuickGELU)
    oa = {"embed_dim": 32, "quick_gelu": True,
          "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 16},
          "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2}}
    model3 = open_clip.model.CLIP(**oa)
    torch.save(model3.state_dict(), tmp_path / "openai_format.pt")
    clip3 = load_clip(str(tmp_path / "openai_format.pt"))
    assert clip3.arch == "file:openai-state-dict"
    assert torch.allclose(clip3.encode_text(ids), model3.encode_text(ids), atol=1e-5)
    with pytest.raises(BackboneError, match="not a CLIP checkpoint"):
        torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
        load_clip(str(tmp_path / "other.pt"))


def test_context_init_longer_than_the_context_is_rejected(tiny):
    with pytest.raises(ValueError, match=r"TRAINER.COOP.CTX_INIT .* context length 24"):
        PromptLearner(tiny, NAMES, n_ctx=None, ctx_init=" ".join(["photo"] * 30), cfg_key="TRAINER.COOP")
    with pytest.raises(ValueError, match="context length 24"):  # context + long class name
        PromptLearner(tiny, ["a very " * 6 + "long name"], n_ctx=8)
    with pytest.raises(ValueError, match="N_CTX=5 must be between 1 and the 4 tokens"):
        PromptLearner(tiny, NAMES, n_ctx=5, ctx_init="a photo of a")


def test_precision_rules():
    assert effective_precision("fp16", "cpu") == "fp32"
    assert effective_precision("amp", "cpu") == "fp32"
    with pytest.raises(ValueError, match="PREC"):
        effective_precision("fp8", "cpu")


def test_low_precision_weights_keep_fp32_prompts(tiny):
    # CUDA-only in training; here the bf16 plumbing is checked on the CPU by casting directly.
    import copy
    lp_model = copy.deepcopy(tiny.model)
    clip_mod._cast_low_precision(lp_model, "bf16")
    lp = clip_mod.ClipBackbone(lp_model, tiny.tokenizer, precision="bf16", name="bf16-test")
    assert lp.dtype == torch.bfloat16
    pl = PromptLearner(lp, NAMES, n_ctx=None, ctx_init="a photo of a")
    feats = encode_prompts(lp, pl(), pl.tokenized_prompts)
    feats.sum().backward()
    assert feats.dtype == torch.float32 and pl.ctx.grad.dtype == torch.float32
    ref = tiny.zero_shot_text_features(NAMES)
    assert (F.normalize(feats.detach(), dim=-1) - ref).abs().max() < 2e-2  # bf16 rounding
    img = torch.randn(2, 3, 32, 32)
    vp = torch.zeros(2, lp.vision_width)
    out = lp.encode_image(img, visual_prompts=vp, deep_visual_prompts=[vp])
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_templates_and_the_ensemble(tiny):
    from cpt.trainers.templates import DATASET_TEMPLATES, ENSEMBLE_TEMPLATES, get_ensemble_templates, get_template
    for t in list(DATASET_TEMPLATES.values()) + ENSEMBLE_TEMPLATES:
        assert t.count("{}") == 1
    assert get_template("EuroSAT") == "a centered satellite photo of {}."
    assert get_template("SomeNewDataset") == "a photo of a {}."
    assert get_template("EuroSAT", "a {} seen from above.") == "a {} seen from above."
    with pytest.raises(ValueError, match="exactly one"):
        get_template("EuroSAT", "no placeholder")
    assert get_ensemble_templates("ImageNet") == ENSEMBLE_TEMPLATES
    assert get_ensemble_templates("OxfordPets")[-1] == "a photo of a {}, a type of pet."
    a = tiny.zero_shot_text_features(NAMES, "itap of a {}.")
    b = tiny.zero_shot_text_features(NAMES, "art of the {}.")
    both = tiny.zero_shot_text_features(NAMES, ["itap of a {}.", "art of the {}."])
    assert torch.allclose(both, F.normalize(a + b, dim=-1), atol=1e-6)


def test_the_shipped_world_clip_loads_through_the_adapter():
    from cpt.trainers.clip import world as world_clip
    if not os.path.isfile(world_clip.DEFAULT_CHECKPOINT):
        pytest.skip("trainers/weights/world_tiny.pt not built yet")
    clip = load_clip("world-tiny")
    model, _ = world_clip.load_world_clip()
    assert clip.source["file"] == world_clip.DEFAULT_CHECKPOINT and clip.context_length == 24
    ids = clip.tokenize(["a photo of a gloss."])
    assert torch.allclose(clip.encode_text(ids), model.encode_text(ids), atol=1e-5)


def test_resnet_dense_features_are_the_attention_pool_values(tmp_path):
    clip = load_clip(rn_clip_file(tmp_path))
    assert clip.is_attnpool_resnet and clip.has_dense_features and not clip.is_vit
    torch.manual_seed(0)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        g, dense = clip.encode_image(x, return_tokens=True)
        ref = clip.model.encode_image(x)
    assert dense.shape == (3, 4, 32)                   # 2 x 2 locations, embedding 32
    assert torch.allclose(g, ref, atol=1e-5)           # the global feature is the pool's output
    # uniform attention (q, k zeroed) and no positional embedding: the pool's output is the mean of
    # the values of the mean token and the locations, i.e. exactly the mean of the dense features
    pool = clip.model.visual.attnpool
    with torch.no_grad():
        for lin in (pool.q_proj, pool.k_proj):
            lin.weight.zero_()
            lin.bias.zero_()
        pool.positional_embedding.zero_()
        g0, dense0 = clip.encode_image(x, return_tokens=True)
    assert torch.allclose(g0, dense0.mean(dim=1), atol=1e-5)
    # another resolution: the spatial positional embedding is resized (3 x 3 grid at 96 px)
    with torch.no_grad():
        g96, dense96 = clip.encode_image(torch.randn(2, 3, 96, 96), return_tokens=True)
    assert dense96.shape == (2, 9, 32) and torch.isfinite(g96).all()
    # plain encode_image off the native grid takes the same resized path (open_clip's pool cannot);
    # a fresh model, so that the positional embedding is not zero
    clip = load_clip(rn_clip_file(tmp_path, seed=6))
    torch.manual_seed(1)
    x96 = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(clip.encode_image(x), clip.model.encode_image(x), atol=0)  # native: open_clip
        plain96 = clip.encode_image(x96)
        assert torch.allclose(plain96, clip.encode_image(x96, return_tokens=True)[0], atol=1e-6)
        with pytest.raises(RuntimeError):
            clip.model.encode_image(x96)
    with pytest.raises(BackboneError, match="ViT"):
        clip.encode_image(x, visual_prompts=torch.zeros(2, 8))
