"""Multi-label prompt tuning (issue 8): the BCE loss with unknown labels, CoOp-BCE + CCR on
degenerate batches, TaI-DPT trained on the world's captions (build, train, save, load, evaluate),
caption labelling with synonym files, and the build-time check of CCR with a softmax loss.

A randomly initialised world-tiny CLIP and a small ShapeWorldML split (40 train / 16 val / 24 test
scenes of the real generator, cast variant) written under ``DATASET.ROOT/shapeworldml/cast/``,
which the dataset module reads instead of materialising the full split."""
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cpt import (
    datasets,  # noqa: F401  (registers the datasets and the synonym files)
    trainers,  # noqa: F401  (registers the trainers)
)
from cpt.datasets import world
from cpt.datasets.captions import CaptionMatcher, caption_multihot, synonyms_for
from cpt.engine.checkpoint import latest_checkpoint
from cpt.trainers.taidpt import ranking_loss, softmax_pool
from cpt.trainers.task import masked_bce
from tests import runs

N_TRAIN, N_VAL, N_TEST = 40, 16, 24


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("mldata")
    world.materialize_multilabel_split(str(path / "shapeworldml" / "cast"), variant="cast", seed=0,
                                       n_train=N_TRAIN, n_val=N_VAL, n_test=N_TEST)
    return str(path)


ML_DATA = ("DATASET.NAME", "ShapeWorldML", "DATASET.VARIANT", "cast", "TEST.EVALUATOR", "MultiLabelClassification",
           "DATALOADER.TRAIN_X.BATCH_SIZE", "16", "DATALOADER.TEST.BATCH_SIZE", "32")


def run(root, out, trainer, *opts, flags=(), epochs=1, subsample="base"):
    return runs.run(root, out, trainer, "DATASET.SUBSAMPLE_CLASSES", subsample, *opts, flags=flags, epochs=epochs,
                    data=ML_DATA)


COOP_BCE = ("TRAINER.COOP.CTX_INIT", "a photo of a", "TRAINER.COOP.LOSS", "bce", "TRAINER.COOP.PREC", "fp32",
            "TRAINER.COOP.BCE_SCALE", "13.7", "TRAINER.COOP.BCE_BIAS", "-7.7")
TAIDPT = ("DATASET.TRAIN_SOURCE", "captions", "TRAINER.TAIDPT.N_CTX", "4", "TRAINER.TAIDPT.PREC", "fp32",
          "TRAINER.TAIDPT.GL_MERGE", "0.75", "TRAINER.TAIDPT.PROB_FIT", "val", "OPTIM.LR", "0.01")


# ------------------------------------------------------------------------------- losses
def test_unknown_entries_carry_no_loss_and_no_gradient():
    torch.manual_seed(0)
    z = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[1, 0, -1, 0, 1], [0, -1, -1, 1, 0], [-1, 0, 1, 0, 0], [1, 1, 0, -1, 0]])
    known = y >= 0
    loss = masked_bce(z, y)
    ref = F.binary_cross_entropy_with_logits(z[known], (y[known] == 1).double())
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-12)
    loss.backward()
    assert torch.all(z.grad[~known] == 0) and torch.all(z.grad[known] != 0)
    # changing an unknown entry's logit changes nothing
    z2 = z.detach().clone()
    z2[~known] += 100.0
    assert float(masked_bce(z2, y)) == pytest.approx(float(loss.detach()), rel=1e-12)
    # the ranking loss: -1 entries are neither positive nor negative; hand-worked value
    s = torch.tensor([[3.0, 1.0, 2.5, 0.0]], requires_grad=True)
    t = torch.tensor([[1, 0, -1, 0]])
    r = ranking_loss(s, t, margin=1.0)  # pairs (0,1): max(0, 1-3+1)=0, (0,3): max(0, 1-3+0)=0
    assert float(r.detach()) == 0.0
    r2 = ranking_loss(s, torch.tensor([[0, 1, -1, 0]]), margin=1.0)  # (1,0): 1-1+3=3, (1,3): 1-1+0=0
    assert float(r2.detach()) == pytest.approx(3.0)
    r2.backward()
    assert s.grad[0, 2] == 0 and s.grad[0, 0] == 1.0 and s.grad[0, 1] == -1.0
    # softmax pooling: masked tokens get no weight; with T -> inf it is the max over kept tokens
    cos = torch.tensor([[[0.9], [0.1], [0.5]]])
    keep = torch.tensor([[False, True, True]])
    assert float(softmax_pool(cos, 1e4, keep)) == pytest.approx(0.5)
    assert float(softmax_pool(cos, 0.0, keep)) == pytest.approx(0.3)


# ------------------------------------------------------------------------------- CoOp-BCE + CCR
def test_bce_coop_ccr_trains_without_nan_on_degenerate_batches(root, tmp_path):
    t = run(root, str(tmp_path / "coop"), "CoOp", *COOP_BCE, "CALIB.METHOD", "['ccr']", epochs=0)
    res = t.last_results["test"]
    assert {"mAP", "cf1", "of1", "ece", "accuracy"} <= set(res) and 0 <= res["mAP"] <= 100
    assert t.regularizer_fields() >= {"probs", "targets", "text_similarity"} and "labels" not in t.regularizer_fields()
    # the evaluator's probability is the loss's sigmoid: sigmoid(13.7 * cos - 7.7)
    imf = t.last_outputs["features"]
    with torch.no_grad():
        cos = imf @ t.class_text_features().t()
    assert np.allclose(t.evaluator.probs, torch.sigmoid(13.7 * cos.double() - 7.7).numpy(), atol=1e-5)
    assert t.results_extra()["probability_map"]["scale"] == pytest.approx(13.7)

    batch = next(iter(t.train_loader_x))
    imgs = batch["img"][:6]
    n_cls = t.num_classes
    y = torch.zeros(6, n_cls, dtype=torch.int64)
    y[:, 0] = 1                      # class 0 is never inactive
    y[:5, 1] = 1                     # class 1 is inactive in exactly one sample
    y[0, 2], y[3, 2] = -1, 1         # unknown entries are not inactive either
    y[:, 3] = -1                     # class 3 unknown everywhere
    before = t.learner.ctx.detach().clone()
    t.set_model_mode("train")
    t.batch_idx, t.num_batches = 0, 2
    defined = []
    for labels in (y, torch.ones(6, n_cls, dtype=torch.int64)):  # second batch: no inactive entry at all
        logs = t.forward_backward({"img": imgs, "label": labels, "index": torch.arange(6)})
        assert all(np.isfinite(v) for v in logs.values()), logs
        assert logs["loss"] == pytest.approx(logs["loss_task"] + logs["ccr"], rel=1e-5)
        assert torch.isfinite(t.learner.ctx).all()
        defined.append(logs["ccr_defined"])
    # first batch: pairs with class 0 (never inactive), 1 (inactive once) or 3 (unknown) drop out;
    # class 2 (4 inactive) and classes 4..31 (6 inactive) give 29 * 28 pairs, plus the diagonal.
    # second batch: only the diagonal.
    assert defined == [29 * 28 + n_cls, n_cls]
    assert not torch.equal(before, t.learner.ctx.detach())


@pytest.mark.parametrize("name,node", [("CoCoOp", "COCOOP"), ("KgCoOp", "KGCOOP")])
def test_every_bce_trainer_feeds_ccr(root, tmp_path, name, node):
    """One BCE + CCR step of the other BCE prompt learners: finite terms, the context moves."""
    t = run(root, str(tmp_path / name), name, f"TRAINER.{node}.CTX_INIT", "a photo of a", f"TRAINER.{node}.LOSS",
            "bce", f"TRAINER.{node}.PREC", "fp32", "CALIB.METHOD", "['ccr']", flags=["--no-train"])
    batch = next(iter(t.train_loader_x))
    before = t.learner.ctx.detach().clone()
    t.set_model_mode("train")
    t.batch_idx, t.num_batches = 0, 2
    logs = t.forward_backward(batch)
    assert all(np.isfinite(v) for v in logs.values()) and logs["ccr_defined"] > t.num_classes, logs
    assert not torch.equal(before, t.learner.ctx.detach())


def test_ccr_with_ce_fails_at_build(root, tmp_path):
    with pytest.raises(ValueError, match=r"'ccr'.*TRAINER\.COOP\.LOSS is 'ce'"):
        run(root, str(tmp_path / "x"), "CoOp", "TRAINER.COOP.CTX_INIT", "a photo of a", "CALIB.METHOD", "['ccr']")
    with pytest.raises(ValueError, match=r"TRAINER\.COOP\.LOSS is 'ce'.*multi-label; set TRAINER\.COOP\.LOSS bce"):
        run(root, str(tmp_path / "y"), "CoOp", "TRAINER.COOP.CTX_INIT", "a photo of a")
    with pytest.raises(ValueError, match=r"'tcpt' needs \['labels'\]"):
        run(root, str(tmp_path / "z"), "CoOp", *COOP_BCE, "CALIB.METHOD", "['tcpt']")


# ------------------------------------------------------------------------------- PROB_MAP
SCENES = ("MODEL.BACKBONE.NAME", "world-tiny-scenes", "MODEL.BACKBONE.PRETRAINED", "True")
COOP_BCE_ONLY = ("TRAINER.COOP.CTX_INIT", "a photo of a", "TRAINER.COOP.LOSS", "bce", "TRAINER.COOP.PREC", "fp32")


def test_prob_map_reads_the_backbone_manifest_and_equals_its_numbers(root, tmp_path):
    """``PROB_MAP scene`` gives the evaluator the same probabilities as copying the manifest's
    numbers into BCE_SCALE/BCE_BIAS; TaI-DPT's config map reads it too."""
    from cpt.trainers.clip import world as wc
    m = json.load(open(wc.manifest_path(wc.CHECKPOINTS["world-tiny-scenes"])))["scene_probability_map"]
    named = run(root, str(tmp_path / "named"), "CoOp", *COOP_BCE_ONLY, *SCENES, "TRAINER.COOP.PROB_MAP", "scene",
                epochs=0)
    copied = run(root, str(tmp_path / "copied"), "CoOp", *COOP_BCE_ONLY, *SCENES, "TRAINER.COOP.BCE_SCALE",
                 str(m["scale"]), "TRAINER.COOP.BCE_BIAS", str(m["bias"]), epochs=0)
    assert named.probability_map() == (m["scale"], m["bias"]) == copied.probability_map()
    assert np.array_equal(named.evaluator.probs, copied.evaluator.probs)
    assert named.last_results["test"] == copied.last_results["test"]
    info = json.load(open(tmp_path / "named" / "results.json"))["probability_map"]
    assert info["scale"] == m["scale"] and "PROB_MAP 'scene'" in info["source"]
    assert info["source"].endswith("world_tiny_scenes.json)")
    tai = run(root, str(tmp_path / "tai"), "TaIDPT", *SCENES, "TRAINER.TAIDPT.PROB_MAP", "scene",
              "TRAINER.TAIDPT.N_CTX", "4", flags=["--no-train"])
    assert tai.probability_map() == (m["scale"], m["bias"])


def test_prob_map_errors_name_the_key_and_the_manifest(root, tmp_path):
    with pytest.raises(KeyError, match=r"world_tiny_scenes\.json has no 'sepia_probability_map'.*\['scene'\]"):
        run(root, str(tmp_path / "a"), "CoOp", *COOP_BCE_ONLY, *SCENES, "TRAINER.COOP.PROB_MAP", "sepia",
            flags=["--no-train"])
    with pytest.raises(ValueError, match=r"TRAINER\.COOP\.PROB_MAP is 'scene' but BCE_SCALE/BCE_BIAS are 13\.7"):
        run(root, str(tmp_path / "b"), "CoOp", *COOP_BCE_ONLY, *SCENES, "TRAINER.COOP.PROB_MAP", "scene",
            "TRAINER.COOP.BCE_SCALE", "13.7", flags=["--no-train"])
    with pytest.raises(FileNotFoundError, match=r"probability map 'scene'.*not loaded from a file"):
        run(root, str(tmp_path / "c"), "CoOp", *COOP_BCE_ONLY, "TRAINER.COOP.PROB_MAP", "scene",
            flags=["--no-train"])


# ------------------------------------------------------------------------------- TaI-DPT
def test_taidpt_on_captions_trains_saves_loads_and_evaluates(root, tmp_path):
    out = str(tmp_path / "base")
    t = run(root, out, "TaIDPT", *TAIDPT, "CALIB.METHOD", "['ccr']", epochs=1)
    assert t.train_source == "captions" and len(t.captions_text) == N_TRAIN
    assert t.caption_label_agreement == 100.0  # names + synonyms reproduce the generator's labels
    res = t.last_results["test"]
    assert {"mAP", "ece", "cf1", "of1"} <= set(res) and np.isfinite(res["ece"])
    info = t.results_extra()["probability_map"]
    assert info["source"].startswith("fitted on the validation split")
    saved = json.load(open(os.path.join(out, "prob_map.json")))
    assert (saved["scale"], saved["bias"]) == pytest.approx((info["scale"], info["bias"]))
    a, b = info["scale"], info["bias"]
    # checkpoint: the two contexts only; the evaluator's probability is sigmoid(a * merged + b)
    ckpt = torch.load(latest_checkpoint(os.path.join(out, "prompt_learner")), weights_only=False)
    assert set(ckpt["state_dict"]) == {"ctx", "ctx_local"}
    t.set_model_mode("eval")
    t.before_evaluation("test")
    with torch.no_grad():
        merged = torch.cat([t.forward_logits(bt["img"])["merged"] for bt in t.test_loader])
    t.after_evaluation()
    assert np.allclose(t.evaluator.probs, torch.sigmoid(a * merged.double() + b).numpy(), atol=1e-5)
    res_json = json.load(open(os.path.join(out, "results.json")))
    assert res_json["status"] == "finished" and res_json["probability_map"]["scale"] == pytest.approx(a)
    # reload: identical logits, same map (read from prob_map.json, not refitted)
    ev = run(root, str(tmp_path / "eval"), "TaIDPT", *TAIDPT, "CALIB.METHOD", "['ccr']",
             flags=["--eval-only", "--model-dir", out, "--load-epoch", "1"])
    assert torch.equal(ev.last_outputs["logits"], t.last_outputs["logits"])
    assert ev.probability_map() == pytest.approx((a, b))
    # new classes: the base-class map is reused, the new columns are scored
    new = run(root, str(tmp_path / "new"), "TaIDPT", *TAIDPT, subsample="new",
              flags=["--eval-only", "--model-dir", out, "--load-epoch", "1"])
    assert new.last_outputs["logits"].shape == (N_TEST, 32) and new.probability_map() == pytest.approx((a, b))
    # without the fitted map an eval-only run refuses to fit on its own (new-class) validation split
    os.remove(os.path.join(out, "prob_map.json"))
    with pytest.raises(FileNotFoundError, match="prob_map.json"):
        run(root, str(tmp_path / "new2"), "TaIDPT", *TAIDPT, subsample="new",
            flags=["--eval-only", "--model-dir", out, "--load-epoch", "1"])


def test_taidpt_trains_on_the_world_caption_corpus(root, tmp_path):
    """DATASET.NUM_CAPTIONS N: TaI-DPT trains on the first N captions of the world's text corpus
    (names and descriptions mixed), not on the training scenes' captions, labelled exactly."""
    t = run(root, str(tmp_path / "corpus"), "TaIDPT", *TAIDPT, "DATASET.NUM_CAPTIONS", "70", epochs=1)
    corpus = world.caption_corpus(world.WORLD_SEED, 70)
    assert t.captions_text == [c for c, _ in corpus] and len(t.captions_text) == 70 != N_TRAIN
    assert t.caption_label_agreement == 100.0
    assert t.results_extra()["n_captions"] == 70
    # the loader's targets are the corpus labels cut to the trained (base) columns
    targets = t.train_loader_x.dataset.targets.numpy()
    ref = np.array([world.multi_hot(labs) for _, labs in corpus])[:, :32]
    assert np.array_equal(targets, ref)


def test_taidpt_with_a_resnet_backbone_uses_the_attention_pool_dense_features(root, tmp_path):
    """The upstream TaI-DPT backbone family (ModifiedResNet, RN50): trains on captions and scores
    images with the attention pool's per-location values as the local features."""
    from tests.clip_fixtures import rn_clip_file
    rn = rn_clip_file(tmp_path)
    t = run(root, str(tmp_path / "rn"), "TaIDPT", *TAIDPT, "MODEL.BACKBONE.NAME", rn, "INPUT.SIZE", "(64, 64)",
            "TRAINER.TAIDPT.CTX_INIT", "a photo of a", epochs=1)
    assert t.clip.is_attnpool_resnet and t.last_results["test"]["mAP"] > 0
    batch = next(iter(t.test_loader))["img"]
    with torch.no_grad():
        g, dense = t.dense_image_features(batch)
        out = t.forward_logits(batch)
    assert g.shape == (batch.shape[0], 32) and dense.shape == (batch.shape[0], 4, 32)
    # the merged score is GL_MERGE * global + (1 - GL_MERGE) * softmax-pooled local, on these features
    text_l = t.local_text_features()
    local = softmax_pool(dense @ text_l.t(), float(t.tcfg.SPATIAL_T_IMAGE))
    assert torch.allclose(out["local"], local, atol=1e-5)
    assert torch.allclose(out["merged"], 0.75 * out["global"] + 0.25 * local, atol=1e-5)


# ------------------------------------------------------------------------------- captions
def test_caption_labels_from_names_and_synonyms():
    names = list(world.WORLD_NAMES)
    syn = synonyms_for("ShapeWorldML")
    assert len(syn) == 64 and syn[names[0]] == [world.WORLD_CLASSNAMES[0]]
    matcher = CaptionMatcher(names, syn)
    rng = np.random.default_rng(0)
    for _ in range(50):
        labs = sorted(int(x) for x in rng.choice(64, size=3, replace=False))
        for cap in (world.scene_caption_description(labs), world.scene_caption(labs, rng)):
            assert matcher.positives(cap) == labs == world.caption_labels(cap), cap
    coco = ["person", "bicycle", "car", "dining table", "hot dog", "bus", "mouse", "sports ball"]
    syn = synonyms_for("COCO2014")
    got = CaptionMatcher(coco, syn).positives
    assert got("Two women riding bikes past parked cars.") == [0, 1, 2]
    assert got("A man eats hot dogs at a table") == [0, 3, 4]
    assert got("Buses and a ball; mice everywhere.") == [5, 6, 7]
    assert got("A womanly scarecrow near a carpet") == []  # whole words only: no "man", no "car"
    # the class name and its plural match without any synonym file
    assert list(caption_multihot("three dogs and a bird", ["dog", "birds", "cat"], synonyms={})) == [1, 1, 0]
    voc = CaptionMatcher(["aeroplane", "tv monitor", "person"], synonyms_for("VOC2007"))
    assert voc.positives("a plane flies over people watching television") == [0, 1, 2]
