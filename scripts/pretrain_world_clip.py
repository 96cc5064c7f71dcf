"""Pretrain the offline world's tiny CLIP and write trainers/weights/world_tiny.{pt,json}.

Recipe (docs/design.md §8): AdamW (lr 1e-3, weight decay 0.1 on matrices, none on norms, biases,
embeddings and the logit scale), batch 256, linear warmup then cosine to 0, logit scale
initialised at 30 and clamped at 100. Data: a pre-generated pool of single-object images
(captions resampled at every use: about half made-up name only, some "a watt, a red circle.",
the rest descriptions; never the word "photo") plus a pool of 2-4 object scenes (a fraction
``--scene-frac`` of every batch; captions list all objects, or name one of them).

Loss: multi-positive symmetric InfoNCE. Caption j (classes T_j) is a positive of image i
(classes L_i) when T_j is a subset of L_i, so same-class pairs in a batch are not pushed apart
and a scene image is pulled toward captions of each of its objects. Per row the loss is
-log(sum of softmax probabilities over the positives).

Evaluation (in the manifest) of the shipped fp16-rounded checkpoint with "a photo of a {name}.":
64-way accuracy on the clean test split (seed 0, 50 per class), 32-way accuracy on the base and
new halves of the cast variant, scene mAP on 1000 clean test scenes.

Usage: python scripts/pretrain_world_clip.py [--steps 3000] [--out trainers/weights/world_tiny.pt].
``--init CKPT`` continues a checkpoint (a scratch parent's recipe goes into the manifest, so a chain
of continuations is recorded). ``--renderings vintage,neon`` draws a fraction ``--render-frac`` of
both pools in those renderings, and a rendered image's caption names its rendering with probability
``--render-word``; the manifest adds each rendering's scene mAP (default and rendering-word prompts)
and probability map. The commands of the shipped checkpoints: README, "The offline world".
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cpt.datasets import world  # noqa: E402
from cpt.calibration.fileio import atomic_write_json, atomic_write_with  # noqa: E402
from cpt.trainers.clip import world as wc  # noqa: E402


class TokenCache:
    """Tokenize each distinct caption once and map its ids into the compact vocabulary."""

    def __init__(self, tokenizer, id_map):
        self.tok, self.id_map, self.cache = tokenizer, id_map, {}

    def __call__(self, texts):
        missing = [t for t in set(texts) if t not in self.cache]
        if missing:
            rows = self.id_map[self.tok(missing)]
            if (rows < 0).any():
                bad = [t for t, r in zip(missing, rows) if (r < 0).any()]
                raise KeyError(f"captions with tokens outside the world vocabulary: {bad[:3]}")
            for t, row in zip(missing, rows):
                self.cache[t] = row
        return torch.stack([self.cache[t] for t in texts])


def world_token_ids(tokenizer):
    """Sorted ids of every token a world caption or prompt can contain (plus pad 0, SOT, EOT).

    Pretraining trains a compact table of these rows only (the ids keep their order, so the
    EOT token stays the argmax that open_clip's text pooling looks for); rows of other tokens
    stay at their seeded initial values, as with the full table and no weight decay on it.
    """
    texts = world.class_names("name") + world.class_names("description")
    for sw, tex, lab in itertools.product(("small", "large"), world.TEXTURES, range(world.N_CLASSES)):
        r = np.random.default_rng(lab)
        texts += [world.pretrain_caption(lab, {"size_word": sw, "texture": tex}, r) for _ in range(40)]
    for name in world.RENDERINGS:
        r = np.random.default_rng(0)
        for lab in range(world.N_CLASSES):
            for _ in range(10):
                texts.append(world.rendered_caption([lab, (lab + 1) % world.N_CLASSES],
                                                    {"rendering": name, "cells": []}, r, 1.0)[0])
    texts += ["a x and a y.", "a x, a y and a z.", "a photo of a x."]
    ids = {0, tokenizer.sot_token_id, tokenizer.eot_token_id}
    for t in texts:
        ids.update(tokenizer.encode(t))
    return sorted(ids)


def compact_text_model(model, ids):
    """Swap the full token table for a table of rows ``ids``; returns the id map (-1 = absent)."""
    full = model.token_embedding
    emb = torch.nn.Embedding(len(ids), full.embedding_dim)
    with torch.no_grad():
        emb.weight.copy_(full.weight[torch.tensor(ids)])
    model.token_embedding = emb
    id_map = torch.full((full.num_embeddings,), -1, dtype=torch.long)
    id_map[torch.tensor(ids)] = torch.arange(len(ids))
    return id_map, full


def expand_text_model(model, ids, full):
    """Put the trained compact rows back into the full table (inverse of compact_text_model)."""
    with torch.no_grad():
        full.weight[torch.tensor(ids)] = model.token_embedding.weight
    model.token_embedding = full
    return model


def param_groups(model, wd):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.ndim < 2 or "token_embedding" in n or "positional_embedding" in n \
                or "class_embedding" in n or "logit_scale" in n:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def multi_positive_loss(logits, pos):
    """logits [B, B] image x text, pos [B, B] bool (text j positive for image i)."""
    neg_inf = torch.finfo(logits.dtype).min
    lse_i = torch.logsumexp(logits, dim=1)
    pos_i = torch.logsumexp(logits.masked_fill(~pos, neg_inf), dim=1)
    lse_t = torch.logsumexp(logits, dim=0)
    pos_t = torch.logsumexp(logits.masked_fill(~pos, neg_inf), dim=0)
    return 0.5 * ((lse_i - pos_i).mean() + (lse_t - pos_t).mean())


def make_batch(rng, pool, scene_pool, batch, scene_frac, p_scene_partial, p_word=0.0):
    """Images, captions and the positive mask of one batch.

    Caption j is a positive of image i when its classes are a subset of the image's and it names
    no rendering or the image's own (a caption without a rendering word fits every rendering).
    Images of plain pools (no ``rendering`` in their meta) draw exactly the captions they drew
    before renderings existed.
    """
    n_scene = int(round(batch * scene_frac))
    idx = rng.integers(len(pool[0]), size=batch - n_scene)
    sidx = rng.integers(len(scene_pool[0]), size=n_scene)
    caps, img_sets, cap_sets, img_r, cap_r = [], [], [], [], []
    for src, rows, scene in ((pool, idx, False), (scene_pool, sidx, True)):
        for i in rows:
            labs, meta = ([int(src[1][i])] if not scene else src[1][i]), src[2][i]
            sub = labs
            if scene and rng.random() < p_scene_partial:
                k = int(rng.integers(1, len(labs)))  # a strict subset, in random order
                sub = [labs[j] for j in rng.permutation(len(labs))[:k]]
            if meta.get("rendering"):
                cap, r = world.rendered_caption(list(sub), meta, rng, p_word)
            elif scene:
                cap, r = world.scene_caption(sub, rng), None
            else:
                cap, r = world.pretrain_caption(labs[0], meta, rng), None
            caps.append(cap)
            cap_r.append(r)
            img_r.append(meta.get("rendering"))
            img_sets.append(set(labs))
            cap_sets.append(set(sub))
    x = np.concatenate([pool[0][idx], scene_pool[0][sidx]], axis=0)
    pos = torch.tensor([[c <= s and (rc is None or rc == ri) for c, rc in zip(cap_sets, cap_r)]
                        for s, ri in zip(img_sets, img_r)], dtype=torch.bool)
    return x, caps, pos


def build_pools(seed, n_single, n_scene, renderings=(), render_frac=0.0):
    """Pretraining pools ``(images, labels, metas)`` of single objects and of scenes.

    Without renderings: the plain pools of streams ``pretrain`` / ``pretrain_scene``. With them, a
    fraction ``render_frac`` of each pool is drawn in the renderings (equal shares, streams
    ``pretrain_<r>`` / ``pretrain_scene_<r>``) and the rest plain; metas carry ``rendering``.
    """
    renderings = list(renderings)
    n_r = [int(round(n * render_frac / len(renderings))) if renderings else 0
           for n in (n_single, n_scene)]
    singles = [world.generate_single_pool(seed, n_single - n_r[0] * len(renderings), stream="pretrain")]
    scenes = [world.generate_scene_pool(seed, n_scene - n_r[1] * len(renderings), stream="pretrain_scene")]
    for r in renderings:
        singles.append(world.generate_single_pool(seed, n_r[0], stream=f"pretrain_{r}", variant=r))
        scenes.append(world.generate_scene_pool(seed, n_r[1], stream=f"pretrain_scene_{r}", variant=r))

    def cat(parts):
        if len(parts) == 1:
            return parts[0]
        imgs = np.concatenate([p[0] for p in parts])
        labels = (np.concatenate([p[1] for p in parts]) if isinstance(parts[0][1], np.ndarray)
                  else [lab for p in parts for lab in p[1]])
        return imgs, labels, [m for p in parts for m in p[2]]
    return cat(singles), cat(scenes)


def encode_text_trimmed(model, text):
    """``model.encode_text`` on tokens cut after the batch's last EOT (same result, less work).

    The causal mask means no position before the EOT attends to the padding after it, and the
    pooled feature is the EOT position's, so trimming trailing padding changes nothing.
    """
    length = int(text.argmax(dim=-1).max()) + 1
    text = text[:, :length]
    x = model.token_embedding(text) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), text.argmax(dim=-1)]
    return x @ model.text_projection


@torch.no_grad()
def encode_images(model, imgs, bs=512):
    out = []
    for i in range(0, len(imgs), bs):
        out.append(F.normalize(model.encode_image(wc.images_to_tensor(imgs[i:i + bs])), dim=-1))
    return torch.cat(out)


@torch.no_grad()
def encode_texts(model, tokenizer, texts):
    return F.normalize(model.encode_text(tokenizer(texts)), dim=-1)


def prompts(kind="name", template="a photo of a {}."):
    return [template.format(c) for c in world.class_names(kind)]


@torch.no_grad()
def evaluate(model, tokenizer, eval_data):
    """Zero-shot numbers (percent for accuracy, mAP as a fraction)."""
    from sklearn.metrics import average_precision_score
    model.eval()
    res = {}
    tn = encode_texts(model, tokenizer, prompts("name"))
    td = encode_texts(model, tokenizer, prompts("description"))
    f = encode_images(model, eval_data["clean"][0])
    y = torch.as_tensor(eval_data["clean"][1])
    res["zs_clean_all_name"] = 100 * ((f @ tn.T).argmax(1) == y).float().mean().item()
    res["zs_clean_all_description"] = 100 * ((f @ td.T).argmax(1) == y).float().mean().item()
    base, new = world.base_new_split()
    for vname in ("clean", "cast"):
        fv = f if vname == "clean" else encode_images(model, eval_data["cast"][0])
        for half, labs in (("base", base), ("new", new)):
            labs_t = torch.tensor(labs)
            m = torch.isin(y, labs_t)
            pred = (fv[m] @ tn[labs_t].T).argmax(1)
            res[f"zs_{vname}_{half}_name"] = 100 * (labs_t[pred] == y[m]).float().mean().item()
    res["cast_strength"] = world.cast_strength("cast")

    def scene_map(scenes, text):  # mean over classes of the average precision
        Y = np.array([world.multi_hot(labs) for labs in scenes[1]])
        s = (encode_images(model, scenes[0]) @ text.T).numpy()
        return float(np.mean([average_precision_score(Y[:, c], s[:, c]) for c in range(Y.shape[1])]))
    if eval_data.get("scene") is not None:
        for kind, t in (("name", tn), ("description", td)):
            res[f"scene_map_{kind}"] = scene_map(eval_data["scene"], t)
    for name, scenes in (eval_data.get("rendered") or {}).items():
        for key, tpl in render_prompts(world.RENDERINGS[name]["word"]).items():
            res[f"{name}_scene_map_{key}"] = scene_map(
                scenes, encode_texts(model, tokenizer, prompts("name", tpl)))
    model.train()
    return res


def render_prompts(word):
    """The prompts compared on rendered scenes: the default one and two naming the rendering."""
    return {"default": "a photo of a {}.", "word": f"a {word} {{}}.",
            "photo_word": f"a photo of a {word} {{}}."}


def build_eval_data(seed, n_per_class, n_scenes, renderings=(), render_stream="scene_test"):
    """Evaluation images; ``renderings``: also ``n_scenes`` scenes of ``render_stream`` in each
    of them (the progress evaluation during training uses the validation stream)."""
    scene = world.generate_scene_pool(seed, n_scenes, stream="scene_test")[:2] if n_scenes else None
    return {"clean": world.generate_class_balanced(seed, "test", n_per_class, "clean"),
            "cast": world.generate_class_balanced(seed, "test", n_per_class, "cast"), "scene": scene,
            "rendered": {r: world.generate_scene_pool(seed, n_scenes, stream=render_stream, variant=r)[:2]
                         for r in renderings}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("--steps", 3000), ("--batch", 256), ("--lr", 1e-3), ("--wd", 0.1),
                          ("--warmup", 100), ("--pool", 60000), ("--scene-pool", 20000),
                          ("--scene-frac", 0.25), ("--scene-partial", 0.4), ("--data-seed", 1),
                          ("--train-seed", 1), ("--eval-seed", world.WORLD_SEED),
                          ("--eval-every", 500), ("--threads", 2)):
        ap.add_argument(flag, type=type(default), default=default)  # --pool: single-object images
    ap.add_argument("--out", default=wc.DEFAULT_CHECKPOINT)
    ap.add_argument("--init", default="", help="continue from this checkpoint (verified against its manifest)")
    ap.add_argument("--name", default="world-tiny", help="backbone name recorded in the manifest")
    ap.add_argument("--renderings", default="",
                    help="comma-separated rendering names of datasets/world RENDERINGS mixed into "
                         "the pools (default none: the plain world)")
    ap.add_argument("--render-frac", type=float, default=0.5,
                    help="fraction of each pool drawn in the renderings (with --renderings)")
    ap.add_argument("--render-word", type=float, default=0.75,
                    help="probability that a rendered image's caption names its rendering")
    ap.add_argument("--eval-only", action="store_true",
                    help="re-evaluate --out and rewrite its manifest (no training)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.eval_only:
        return reevaluate(args.out)
    torch.manual_seed(args.train_seed)
    t0 = time.time()
    renderings = [r for r in args.renderings.split(",") if r]
    for r in renderings:
        if r not in world.RENDERINGS:
            raise SystemExit(f"--renderings: unknown rendering {r!r}; expected names of {sorted(world.RENDERINGS)}")
    pool, scene_pool = build_pools(args.data_seed, args.pool, args.scene_pool, renderings,
                                   args.render_frac)
    eval_small = build_eval_data(args.eval_seed, 10, 300, renderings, render_stream="scene_val")
    print(f"pools ready in {time.time() - t0:.0f}s", flush=True)

    if args.init:
        model = wc.load_world_clip(args.init)[0].train()
        print(f"continuing from {args.init}", flush=True)
    else:
        model = wc.build_world_clip()
    tokenizer = wc.get_world_tokenizer()
    ids = world_token_ids(tokenizer)
    id_map, full_table = compact_text_model(model, ids)
    tok = TokenCache(tokenizer, id_map)
    print(f"compact vocabulary: {len(ids)} tokens", flush=True)

    def eval_tokenizer(texts):
        return id_map[tokenizer(texts)]
    opt = torch.optim.AdamW(param_groups(model, args.wd), lr=args.lr, betas=(0.9, 0.98),
                            eps=1e-6)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        t = (step - args.warmup) / max(1, args.steps - args.warmup)
        return 0.5 * args.lr * (1 + math.cos(math.pi * t))

    rng = np.random.default_rng([args.data_seed, 999])
    max_scale = math.log(100.0)
    model.train()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x, caps, pos = make_batch(rng, pool, scene_pool, args.batch, args.scene_frac,
                                  args.scene_partial, args.render_word)
        img_f = F.normalize(model.encode_image(wc.images_to_tensor(x)), dim=-1)
        txt_f = F.normalize(encode_text_trimmed(model, tok(caps)), dim=-1)
        logits = model.logit_scale.exp() * img_f @ txt_f.T
        loss = multi_positive_loss(logits, pos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, max_scale)
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.3f} scale {model.logit_scale.exp().item():.1f} "
                  f"lr {lr_at(step):.2e} t {time.time() - t0:.0f}s", flush=True)
        if args.eval_every and (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            r = evaluate(model, eval_tokenizer, eval_small)
            print(f"eval step {step + 1}: " + " ".join(f"{k} {v:.3f}" for k, v in r.items()),
                  flush=True)
    train_time = time.time() - t0

    model = expand_text_model(model, ids, full_table)
    atomic_write_with(lambda f: torch.save(wc.pack_checkpoint(model), f), args.out)
    args.wall_time_s, args.weight_decay = round(train_time, 1), args.wd
    if renderings:
        args.renderings = renderings
    manifest = {k: getattr(args, k) for k in RECIPE_KEYS[:-1] if renderings or "render" not in k}
    if args.init:
        manifest["init"] = init_record(args.init)
    return write_manifest(args.out, manifest, args.eval_seed)


# a manifest's training recipe, in order (the rendering keys only with --renderings)
RECIPE_KEYS = ("name", "steps", "batch", "lr", "weight_decay", "warmup", "pool", "scene_pool",
               "scene_frac", "scene_partial", "data_seed", "train_seed", "wall_time_s", "threads",
               "renderings", "render_frac", "render_word", "init")


def init_record(path):
    """The parent checkpoint: file and sha256, plus its own recipe (and so its parent, a chain) when
    it is not a shipped checkpoint and its manifest lies beside it."""
    rec = {"file": os.path.basename(path), "sha256": wc.sha256_file(path)}
    shipped = {os.path.abspath(p) for p in wc.CHECKPOINTS.values()}
    if os.path.abspath(path) not in shipped and os.path.exists(wc.manifest_path(path)):
        with open(wc.manifest_path(path)) as f:
            parent = json.load(f)
        rec["recipe"] = {k: v for k, v in parent.items() if k in RECIPE_KEYS}
    return rec


def fit_scene_probability_map(model, tokenizer, seed, n_scenes=500, variant="clean"):
    """Map p = sigmoid(scale * cos + bias): 1-D logistic regression of the multi-hot labels on the
    cosines of scene-*val*-stream images (drawn in ``variant``; never test) to "a photo of a {name}."
    prompts, all classes pooled."""
    from sklearn.linear_model import LogisticRegression
    imgs, labs, _ = world.generate_scene_pool(seed, n_scenes, stream="scene_val", variant=variant)
    with torch.no_grad():
        cos = (encode_images(model, imgs) @ encode_texts(model, tokenizer, prompts("name")).T)
    y = np.array([world.multi_hot(lab) for lab in labs]).ravel()
    lr = LogisticRegression(C=1e4).fit(cos.numpy().reshape(-1, 1), y)
    return {"scale": round(float(lr.coef_[0, 0]), 4), "bias": round(float(lr.intercept_[0]), 4),
            "formula": "p = sigmoid(scale * cosine + bias)", "fitted_on": "scene_val",
            "variant": variant, "prompt": "a photo of a {name}.", "n_scenes": n_scenes}


def write_manifest(path, manifest, eval_seed=world.WORLD_SEED):
    """Evaluate the checkpoint at ``path`` as shipped and write its manifest next to it."""
    import open_clip
    shipped = wc.unpack_checkpoint(torch.load(path, map_location="cpu", weights_only=True)).eval()
    tokenizer = wc.get_world_tokenizer()
    renderings = manifest.get("renderings", [])
    ev = evaluate(shipped, tokenizer, build_eval_data(eval_seed, 50, 1000, renderings))
    manifest = dict(manifest)
    manifest.update({
        "file": os.path.basename(path),
        "sha256": wc.sha256_file(path),
        "size_bytes": os.path.getsize(path),
        "eval_seed": eval_seed,
        "eval": {"prompt": "a photo of a {name}.", "clean_test_per_class": 50,
                 "scenes": 1000, "accuracy_unit": "percent", "map_unit": "fraction",
                 "halves": "32-way within base (labels 0-31) / new (32-63)",
                 **{k: round(v, 4) for k, v in ev.items()}},
        "zero_shot_accuracy": round(ev["zs_clean_all_name"], 2),
        "scene_map": round(ev["scene_map_name"], 4),
        "scene_probability_map": fit_scene_probability_map(shipped, tokenizer, eval_seed),
        **{f"{r}_probability_map": fit_scene_probability_map(shipped, tokenizer, eval_seed, variant=r)
           for r in renderings},
        "config": wc.WORLD_TINY_CFG,
        "open_clip_version": open_clip.__version__,
        "torch_version": torch.__version__,
    })
    atomic_write_json(manifest, wc.manifest_path(path))
    print(json.dumps(manifest["eval"], indent=2))
    print(f"zero-shot accuracy (clean, 64-way, names): {ev['zs_clean_all_name']:.2f}%  "
          f"wall time {manifest.get('wall_time_s', 0):.0f}s  "
          f"size {manifest['size_bytes'] / 1e6:.2f} MB", flush=True)
    return manifest


def reevaluate(path):
    """Recompute the eval fields of an existing checkpoint's manifest (training fields kept)."""
    with open(wc.manifest_path(path)) as f:
        manifest = json.load(f)
    return write_manifest(path, manifest, manifest.get("eval_seed", world.WORLD_SEED))


if __name__ == "__main__":
    main()
