"""The data of ``scripts/pretrain_world_clip.py``: image pools, batches (captions, positive mask),
caption tokens."""
import itertools

import numpy as np
import torch

from cpt.datasets import world


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
