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

Beside it: ``pretrain_world_data.py`` (pools, batches, tokens), ``pretrain_world_eval.py`` (evaluation,
manifest); here the compact vocabulary, the loss and the loop.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # its modules
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout (cpt)
from cpt.calibration.fileio import atomic_write_with
from cpt.datasets import world
from cpt.trainers.clip import world as wc
from pretrain_world_data import TokenCache, build_pools, make_batch, world_token_ids
from pretrain_world_eval import build_eval_data, evaluate, write_manifest


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


def reevaluate(path):
    """Recompute the eval fields of an existing checkpoint's manifest (training fields kept)."""
    with open(wc.manifest_path(path)) as f:
        manifest = json.load(f)
    return write_manifest(path, manifest, manifest.get("eval_seed", world.WORLD_SEED))


if __name__ == "__main__":
    main()
