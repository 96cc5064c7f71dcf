"""Engine: registries, config, data helpers, schedules, checkpoints and train.py end to end."""
import math
import os

import numpy as np
import pytest
import torch

import train
from cpt.calibration.registry import Registry
from cpt.engine.config import get_cfg_default
from cpt.engine.data import Datum, generate_fewshot, subsample_classes
from cpt.engine.optim import build_lr_scheduler, build_optimizer
from cpt.engine.trainer import TRAINER_REGISTRY
from tests import engine_fixtures
from tests.engine_fixtures import EngineTiny, write_fixture_tree
from tests.runs import engine_args as _args
from tests.runs import train_main


def test_registry_miss_names_closest():
    reg = Registry("THING")

    @reg.register()
    class CoOp:
        pass

    @reg.register()
    class CoCoOp:
        pass

    with pytest.raises(KeyError, match="closest: CoOp"):
        reg.get("Coop")
    assert reg.get("CoOp") is CoOp
    assert set(reg.registered_names()) == {"CoOp", "CoCoOp"}


def test_fewshot_and_base_new_semantics():
    items = [Datum(f"{c}_{i}.png", c, 0, f"c{c}") for c in range(5) for i in range(10)]
    a = generate_fewshot(items, num_shots=3, seed=1)
    b = generate_fewshot(items, num_shots=3, seed=1)
    c = generate_fewshot(items, num_shots=3, seed=2)
    assert [x.impath for x in a] == [x.impath for x in b]
    assert [x.impath for x in a] != [x.impath for x in c]
    assert np.bincount([x.label for x in a]).tolist() == [3] * 5
    names = [f"c{i}" for i in range(5)]
    base, new_names = subsample_classes(items, subsample="base", classnames=names)
    new, new_names2 = subsample_classes(items, subsample="new", classnames=names)
    assert new_names == ["c0", "c1", "c2"] and new_names2 == ["c3", "c4"]  # ceil(5/2) = 3
    assert sorted({x.label for x in base}) == [0, 1, 2]
    assert sorted({x.label for x in new}) == [0, 1]  # relabelled
    assert {x.classname for x in new if x.label == 0} == {"c3"}


def test_multilabel_fewshot_rule_counts_each_class():
    rng = np.random.default_rng(0)
    labels = (rng.random((60, 4)) < 0.3).astype(int)
    items = [Datum(f"{i}.png", labels[i], 0, "") for i in range(60)]
    out = generate_fewshot(items, num_shots=2, seed=3)
    lab = np.array([x.label for x in out])
    pos = (lab == 1).sum(0)
    assert (pos >= np.minimum(2, (labels == 1).sum(0))).all()
    assert len(out) <= 4 * 2


def test_cosine_schedule_with_constant_warmup_epoch_by_epoch():
    cfg = get_cfg_default().OPTIM
    cfg.defrost()
    cfg.NAME, cfg.LR, cfg.LR_SCHEDULER, cfg.MAX_EPOCH = "sgd", 0.002, "cosine", 5
    cfg.WARMUP_EPOCH, cfg.WARMUP_TYPE, cfg.WARMUP_CONS_LR = 1, "constant", 1e-5
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], cfg)
    sched = build_lr_scheduler(opt, cfg)
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [1e-5] + [0.002 * (1 + math.cos(math.pi * s / 5)) / 2 for s in range(4)]
    assert seen == pytest.approx(expected, rel=1e-12)


@pytest.fixture
def fixture_root(tmp_path):
    write_fixture_tree(str(tmp_path / "data"))
    return str(tmp_path / "data")


def _weights(out):
    from cpt.engine.checkpoint import latest_checkpoint

    return torch.load(latest_checkpoint(os.path.join(out, "model")), weights_only=False)["state_dict"]


def test_train_checkpoint_resume_and_eval_only(fixture_root, tmp_path):
    from cpt.engine.utils import read_json

    full = str(tmp_path / "full")
    trainer = train_main(_args(fixture_root, full))
    # LR per epoch: constant warmup epoch, then cosine restarting at the base LR
    assert trainer.lr_per_epoch == pytest.approx([0.01, 0.5, 0.5 * (1 + math.cos(math.pi / 3)) / 2])
    res = read_json(os.path.join(full, "results.json"))
    assert res["status"] == "finished" and res["seed"] == 1 and res["trainer"] == "EngineTiny"
    assert list(res["metrics"])[0] == "accuracy" and "ece" in res["metrics"] and "piece" in res["metrics"]
    log = open(os.path.join(full, "log.txt")).read()
    assert "=> result" in log and "* accuracy:" in log
    # only learnable parameters in the checkpoint; only the last epoch's file is kept
    files = sorted(os.listdir(os.path.join(full, "model")))
    assert files == ["checkpoint", "model.pth.tar-3"]
    sd = _weights(full)
    assert set(sd) == {"head.weight", "head.bias"}

    # interrupted after epoch 1, then resumed with the same command
    part = str(tmp_path / "part")
    EngineTiny.stop_after_epoch = 1
    try:
        with pytest.raises(KeyboardInterrupt):
            train_main(_args(fixture_root, part))
    finally:
        EngineTiny.stop_after_epoch = None
    assert sorted(os.listdir(os.path.join(part, "model"))) == ["checkpoint", "model.pth.tar-1"]
    resumed = train_main(_args(fixture_root, part))
    assert resumed.start_epoch == 1
    for k, v in _weights(full).items():
        assert torch.equal(v, _weights(part)[k]), k

    # eval-only reproduces the final test metrics of the trained run
    ev = str(tmp_path / "eval")
    evaluated = train_main(_args(fixture_root, ev, "--eval-only", "--model-dir", full, "--load-epoch", "3"))
    assert evaluated.last_results["test"]["accuracy"] == pytest.approx(trainer.last_results["test"]["accuracy"])
    assert evaluated.last_results["test"]["ece"] == pytest.approx(trainer.last_results["test"]["ece"])


class _AvgNet(engine_fixtures._Net):
    """The engine's toy net plus a persistent buffer: a running average of the head's weights."""

    def __init__(self, in_dim, n_cls):
        super().__init__(in_dim, n_cls)
        self.register_buffer("head_avg", torch.zeros(n_cls, 16))


@TRAINER_REGISTRY.register()
class EngineTinyAvg(EngineTiny):
    """EngineTiny whose learnable state includes a persistent buffer (as PromptSRC averages prompts)."""

    def build_model(self):
        size = self.cfg.INPUT.SIZE
        self.model = _AvgNet(3 * size[0] * size[1], self.num_classes).to(self.device)
        optim = build_optimizer(self.model, self.cfg.OPTIM)
        self.register_model("model", self.model, optim, build_lr_scheduler(optim, self.cfg.OPTIM))
        self.lr_per_epoch = []

    def forward_backward(self, batch):
        out = super().forward_backward(batch)
        with torch.no_grad():
            self.model.head_avg.mul_(0.5).add_(0.5 * self.model.head.weight)
        return out


def test_persistent_buffer_survives_resume_and_old_checkpoints_still_load(fixture_root, tmp_path):
    avg = ["--trainer", "EngineTinyAvg"]
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    trainer = train.main(train.build_parser().parse_args(_args(fixture_root, full, *avg)))
    sd = _weights(full)
    assert set(sd) == {"head.weight", "head.bias", "head_avg"}
    assert torch.equal(sd["head_avg"], trainer.model.head_avg.cpu()) and sd["head_avg"].abs().sum() > 0
    EngineTiny.stop_after_epoch = 1
    try:
        with pytest.raises(KeyboardInterrupt):
            train.main(train.build_parser().parse_args(_args(fixture_root, part, *avg)))
    finally:
        EngineTiny.stop_after_epoch = None
    resumed = train.main(train.build_parser().parse_args(_args(fixture_root, part, *avg)))
    assert resumed.start_epoch == 1
    for k, v in sd.items():  # the buffer resumed from epoch 1, not from zeros
        assert torch.equal(v, _weights(part)[k]), k
    # a run directory written before buffers were saved (parameters only) still loads for evaluation
    from cpt.engine.checkpoint import latest_checkpoint
    path = latest_checkpoint(os.path.join(full, "model"))
    ckpt = torch.load(path, weights_only=False)
    del ckpt["state_dict"]["head_avg"]
    torch.save(ckpt, path)
    ev = train.main(train.build_parser().parse_args(
        _args(fixture_root, str(tmp_path / "ev"), "--eval-only", "--model-dir", full, "--load-epoch", "3", *avg)))
    assert torch.equal(ev.model.head.weight.cpu(), sd["head.weight"])
    assert ev.last_results["test"]["accuracy"] == pytest.approx(trainer.last_results["test"]["accuracy"])


def test_seed_zero_is_a_seed(fixture_root, tmp_path):
    a = train_main(_args(fixture_root, str(tmp_path / "a"), epochs=1, seed=0))
    train_main(_args(fixture_root, str(tmp_path / "b"), epochs=1, seed=0))
    assert a.cfg.SEED == 0
    for k, v in _weights(str(tmp_path / "a")).items():
        assert torch.equal(v, _weights(str(tmp_path / "b"))[k])


def _cli_error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        train.cli(argv)
    assert exc.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bad_input_one_line_errors(fixture_root, tmp_path, capsys):
    out = str(tmp_path / "o")
    args = _args(fixture_root, out, epochs=1)
    bad_trainer = [a if a != "EngineTiny" else "EngineTinny" for a in args]
    assert "EngineTiny" in _cli_error(capsys, bad_trainer)
    bad_dataset = [a if a != "EngineFixture" else "EngineFixtur" for a in args]
    assert "closest: EngineFixture" in _cli_error(capsys, bad_dataset)
    msg = _cli_error(capsys, args + ["TEST.EVALUATOR", "Clasification"])
    assert "closest: Classification" in msg
    assert "OPTIM.MAX_EPOCHS" in _cli_error(capsys, args + ["OPTIM.MAX_EPOCHS", "3"])
    assert "nope.yaml" in _cli_error(capsys, ["--config-file", str(tmp_path / "nope.yaml")] + args)
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    msg = _cli_error(capsys, _args(fixture_root, out, "--eval-only", "--model-dir", empty, "--load-epoch", "1"))
    assert "No checkpoint" in msg
    trained = str(tmp_path / "trained")
    train_main(_args(fixture_root, trained, epochs=1))
    other = [a if a != "EngineTiny" else "EngineTinyOther" for a in
             _args(fixture_root, str(tmp_path / "o2"), "--eval-only", "--model-dir", trained, "--load-epoch", "1")]
    msg = _cli_error(capsys, other)
    assert "EngineTiny" in msg and "EngineTinyOther" in msg


def test_ignored_dassl_keys_load_and_warn(capsys, tmp_path):
    from cpt.engine.config import DASSL_IGNORED
    from cpt.engine.config_check import merge_file, merge_opts

    cfg = get_cfg_default()
    merge_opts(cfg, ["OPTIM.STAGED_LR", "False", "OPTIM.LR", "0.1"])  # the default value: silent
    assert capsys.readouterr().err == ""
    yaml_file = tmp_path / "upstream.yaml"
    yaml_file.write_text("MODEL:\n  HEAD:\n    NAME: mlp\nDATALOADER:\n  TRAIN_U:\n    BATCH_SIZE: 64\n")
    merge_file(cfg, str(yaml_file), "--config-file")
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: --config-file {yaml_file}: {k} is a Dassl key that this project accepts and ignores"
                   for k in ("MODEL.HEAD.NAME", "DATALOADER.TRAIN_U.BATCH_SIZE")]
    assert cfg.MODEL.HEAD.NAME == "mlp" and len(DASSL_IGNORED) == 25
