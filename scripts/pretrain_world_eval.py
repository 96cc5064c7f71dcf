"""The evaluation of ``scripts/pretrain_world_clip.py``: zero-shot numbers, scene probability maps,
the manifest beside a checkpoint."""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

from cpt.calibration.fileio import atomic_write_json
from cpt.datasets import world
from cpt.trainers.clip import world as wc


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
