"""The bash drivers in scripts/<method>/ with a fake train.py (tests/fake_train.py).

The scripts are copied into a temporary repository root (with small config files and the fake
train.py), so the argv they build, the output layout, the skip of finished runs, the load epoch
and the agreement with scripts/sweep.py are checked without the real trainers.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import sweep  # noqa: E402
from cpt.cli import catalog  # noqa: E402
from tests.fake_runs import fake_repo, read_calls  # noqa: E402

PY = sys.executable
METHODS = {"zsclip": "ZeroshotCLIP", "coop": "CoOp", "cocoop": "CoCoOp", "kgcoop": "KgCoOp", "maple": "MaPLe"}
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@pytest.fixture
def fake(tmp_path):
    configs = []
    for trainer, name, ep in [("CoOp", "vit_b16_ep50_ctxv1", 50), ("CoOp", "vit_b16", None),
                              ("MaPLe", "vit_b16_c2_ep5_batch4_2ctx", 5), ("CoOp", "world_short", 3)]:
        text = "DATALOADER:\n  TRAIN_X:\n    BATCH_SIZE: 4\nOPTIM:\n  NAME: sgd\n"
        if ep is not None:
            text += f"  MAX_EPOCH: {ep}  # epochs\n  LR: 0.0035\n"
        configs.append((trainer, name, text))
    root = tmp_path / "repo"
    fake_repo(root, configs, ("dtd", "eurosat", "shapeworld"), copy=("scripts", "cpt", "cli", "calibration", "trainers"))  # drivers + catalog
    log = tmp_path / "calls.jsonl"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATA", "DATASETS", "SEEDS", "CFG", "CALIB", "SHOTS", "OUTPUT", "OPTS", "GPU",
                        "LOAD_EPOCH", "DRY_RUN", "CUDA_VISIBLE_DEVICES")}
    env.update(PYTHON=PY, DATA=str(tmp_path / "data"), FAKE_LOG=str(log))

    class F:
        pass
    f = F()
    f.root, f.env, f.log, f.tmp = str(root), env, str(log), tmp_path
    f.out = os.path.join(str(root), "output")

    def run(script, *args, cwd="/", **extra):
        e = dict(env)
        e.update({k: str(v) for k, v in extra.items()})
        for k in [k for k, v in e.items() if v is None]:
            del e[k]
        return subprocess.run(["bash", os.path.join(f.root, "scripts", script), *map(str, args)], cwd=cwd,
                              env=e, capture_output=True, text=True, timeout=60)

    f.run, f.calls = run, lambda: read_calls(f.log)
    return f


def opt(argv, flag):
    return argv[argv.index(flag) + 1]


def test_data_unset(fake):
    env = dict(fake.env)
    del env["DATA"]
    for script in ("coop/base2new_train_coop.sh", "coop/base2new_test_coop.sh", "zsclip/base2new_train_zsclip_datasets.sh"):
        args = ["dtd", "1"] if "datasets" not in script else []
        p = subprocess.run(["bash", os.path.join(fake.root, "scripts", script), *args], env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0
        assert "DATA is not set" in p.stderr
    assert fake.calls() == []


def test_train_then_test_coop(fake):
    p = fake.run("coop/base2new_train_coop.sh", "dtd", 1, 3)
    assert p.returncode == 0, p.stderr
    (c,) = fake.calls()
    argv = c["argv"]
    train_dir = os.path.join(fake.out, "base2new/train_base/dtd/shots_16/CoOp/vit_b16_ep50_ctxv1/seed1")
    assert opt(argv, "--output-dir") == train_dir
    assert opt(argv, "--root") == fake.env["DATA"] and opt(argv, "--seed") == "1"
    assert opt(argv, "--trainer") == "CoOp"
    assert opt(argv, "--config-file") == os.path.join(fake.root, "configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml")
    assert opt(argv, "--dataset-config-file") == os.path.join(fake.root, "configs/datasets/dtd.yaml")
    assert argv[-4:] == ["DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base"]
    assert "--eval-only" not in argv and "--calib-config-file" not in argv
    assert c["cvd"] == "3" and c["cwd"] == "/"
    # a finished run is skipped
    p = fake.run("coop/base2new_train_coop.sh", "dtd", 1)
    assert p.returncode == 0 and "[skip] finished" in p.stdout and len(fake.calls()) == 1
    # test with no arguments: every trained dataset/seed; load epoch from the config's MAX_EPOCH
    p = fake.run("coop/base2new_test_coop.sh", cwd=str(fake.tmp))
    assert p.returncode == 0, p.stderr
    argv = fake.calls()[-1]["argv"]
    assert opt(argv, "--output-dir") == train_dir.replace("train_base", "test_new")
    assert opt(argv, "--model-dir") == train_dir and opt(argv, "--load-epoch") == "50"
    assert argv[-5:] == ["--eval-only", "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "new"]
    p = fake.run("coop/base2new_test_coop.sh", "dtd", 1)
    assert "[skip] finished" in p.stdout and len(fake.calls()) == 2
    # the parser over the same output
    p = fake.run("coop/parse_all_results.sh", "--format", "csv", cwd=str(fake.tmp))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("dataset,base_acc,base_acc_std,new_acc,new_acc_std,hm,")
    # fake metrics: base acc 70 + 1 + 10, new acc 71
    assert lines[1].startswith("dtd,81.0000,,71.0000,,75.6711,")  # 2*81*71/152 and lines[2].startswith("average,")


def test_test_without_model_fails(fake):
    p = fake.run("coop/base2new_test_coop.sh", "dtd", 1)
    assert p.returncode != 0 and "no trained model" in p.stderr
    p = fake.run("coop/base2new_test_coop.sh")
    assert p.returncode != 0 and "no trained model" in p.stderr
    assert fake.calls() == []


def test_unfinished_run_resumes(fake):
    p = fake.run("maple/base2new_train_maple.sh", "eurosat", 2, FAKE_FAIL="eurosat/2/base")
    assert p.returncode == 1
    d = os.path.join(fake.out, "base2new/train_base/eurosat/shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx/seed2")
    assert json.load(open(os.path.join(d, "results.json")))["status"] == "failed"
    p = fake.run("maple/base2new_train_maple.sh", "eurosat", 2)
    assert p.returncode == 0 and "[resume]" in p.stdout and len(fake.calls()) == 2
    p = fake.run("maple/base2new_test_maple.sh", "eurosat", 2)
    assert opt(fake.calls()[-1]["argv"], "--load-epoch") == "5"


def test_calib_and_opts(fake):
    p = fake.run("coop/base2new_train_coop.sh", "dtd", 1, CALIB="tcpt", OPTS="OPTIM.MAX_EPOCH 7 TEST.X 1",
                 SHOTS=4, OUTPUT="rel_out", cwd=str(fake.tmp))
    assert p.returncode == 0, p.stderr
    argv = fake.calls()[-1]["argv"]
    out = os.path.join(str(fake.tmp), "rel_out")
    assert opt(argv, "--output-dir") == os.path.join(
        out, "base2new/train_base/dtd/shots_4/CoOp/vit_b16_ep50_ctxv1_tcpt/seed1")
    assert opt(argv, "--calib-config-file") == os.path.join(fake.root, "configs/calibration/tcpt.yaml")
    assert argv[-8:] == ["DATASET.NUM_SHOTS", "4", "DATASET.SUBSAMPLE_CLASSES", "base", "OPTIM.MAX_EPOCH", "7",
                         "TEST.X", "1"]
    p = fake.run("coop/base2new_test_coop.sh", CALIB="tcpt", OPTS="OPTIM.MAX_EPOCH 7 TEST.X 1", SHOTS=4,
                 OUTPUT=out)
    assert p.returncode == 0, p.stderr
    argv = fake.calls()[-1]["argv"]
    assert opt(argv, "--load-epoch") == "7"  # OPTIM.MAX_EPOCH in OPTS wins over the config
    assert "/test_new/dtd/shots_4/CoOp/vit_b16_ep50_ctxv1_tcpt/seed1" in opt(argv, "--output-dir")
    # LOAD_EPOCH wins over both
    p = fake.run("coop/base2new_test_coop.sh", "dtd", 2, CALIB="tcpt", SHOTS=4, OUTPUT=out, LOAD_EPOCH=9,
                 DRY_RUN=1)
    assert p.returncode == 0 and "--load-epoch 9 " in p.stdout and len(fake.calls()) == 2
    # unknown preset / config: clear errors
    p = fake.run("coop/base2new_train_coop.sh", "dtd", 1, CALIB="nope")
    assert p.returncode != 0 and "calibration preset 'nope' not found" in p.stderr and "tcpt" in p.stderr
    p = fake.run("coop/base2new_train_coop.sh", "dtd", 1, CFG="nope")
    assert p.returncode != 0 and "method config 'nope' not found" in p.stderr
    p = fake.run("coop/base2new_train_coop.sh", "imagenet", 1)
    assert p.returncode != 0 and "dataset config 'imagenet' not found" in p.stderr


def test_zsclip(fake):
    p = fake.run("zsclip/base2new_train_zsclip.sh", "dtd", 2)
    assert p.returncode == 0, p.stderr
    argv = fake.calls()[-1]["argv"]
    assert "--eval-only" in argv and "--model-dir" not in argv
    assert opt(argv, "--config-file") == os.path.join(fake.root, "configs/trainers/CoOp/vit_b16.yaml")
    assert "/train_base/dtd/shots_16/ZeroshotCLIP/vit_b16/seed2" in opt(argv, "--output-dir")
    p = fake.run("zsclip/base2new_test_zsclip.sh")
    assert p.returncode == 0, p.stderr
    argv = fake.calls()[-1]["argv"]
    assert "--model-dir" not in argv and "--load-epoch" not in argv
    assert argv[-1] == "new" and "/test_new/dtd/shots_16/ZeroshotCLIP/vit_b16/seed2" in opt(argv, "--output-dir")


def test_datasets_loop_continues_after_failure(fake):
    p = fake.run("coop/base2new_train_coop_datasets.sh", DATASETS="dtd eurosat", SEEDS="1 2",
                 FAKE_FAIL="dtd/2/base")
    assert p.returncode == 1 and "failed runs: dtd/seed2" in p.stderr
    assert [(opt(c["argv"], "--dataset-config-file")[-9:-5].strip("/"), opt(c["argv"], "--seed"))
            for c in fake.calls()] == [("dtd", "1"), ("dtd", "2"), ("osat", "1"), ("osat", "2")]
    # test with no args: only the three trained runs
    p = fake.run("coop/base2new_test_coop.sh")
    assert p.returncode == 0, p.stderr
    tested = sorted(re.search(r"test_new/(\w+)/.*seed(\d)", opt(c["argv"], "--output-dir")).groups()
                    for c in fake.calls()[4:])
    assert tested == [("dtd", "1"), ("eurosat", "1"), ("eurosat", "2")]
    # DATASETS restricts the no-arg test; the _datasets test script runs the grid and fails on dtd/2
    p = fake.run("coop/base2new_test_coop_datasets.sh", DATASETS="dtd", SEEDS="1 2")
    assert p.returncode == 1 and "no trained model for dtd seed2" in p.stderr
    # the default dataset list is the 11 benchmarks, not the offline world
    p = fake.run("coop/base2new_train_coop_datasets.sh", DRY_RUN=1, CFG="world_short")
    assert "configs/datasets/imagenet.yaml" in p.stderr and "shapeworld" not in p.stdout


def test_offline_world_overrides(fake):
    p = fake.run("coop/base2new_train_coop_datasets.sh", DATASETS="shapeworld", SEEDS="1", CFG="world_short")
    assert p.returncode == 0, p.stderr
    p = fake.run("coop/base2new_test_coop.sh", DATASETS="shapeworld", CFG="world_short")
    assert p.returncode == 0, p.stderr
    argv = fake.calls()[-1]["argv"]
    assert opt(argv, "--load-epoch") == "3"
    assert "/test_new/shapeworld/shots_16/CoOp/world_short/seed1" in opt(argv, "--output-dir")


@pytest.mark.parametrize("method,calib,opts", [("coop", "none", ""), ("maple", "tcpt", "OPTIM.MAX_EPOCH 2"),
                                               ("zsclip", "none", "")])
def test_sweep_builds_the_same_commands(fake, method, calib, opts):
    """scripts/sweep.py and the bash scripts produce identical argv."""
    m = method
    for kind in ("train", "test"):
        p = fake.run(f"{m}/base2new_{kind}_{m}.sh", "eurosat", 3, CALIB=calib, OPTS=opts)
        assert p.returncode == 0, p.stderr
    bash_train, bash_test = [c["argv"] for c in fake.calls()]
    runs = sweep.expand_grid({"datasets": ["eurosat"], "seeds": [3], "methods": [m], "calibs": [calib],
                              "data": fake.env["DATA"], "python": PY, "opts": opts,
                              "output": fake.out}, root=fake.root)
    (r,) = runs
    assert r.train_cmd[0] == PY and r.train_cmd[1] == os.path.join(fake.root, "train.py")
    assert r.train_cmd[2:] == bash_train and r.test_cmd[2:] == bash_test


def test_method_scripts_complete():
    """Every method directory has the five scripts, executable, driving its catalog entry (the
    forks' config names)."""
    defaults = {"zsclip": "vit_b16", "coop": "vit_b16_ep50_ctxv1", "cocoop": "vit_b16_c4_ep10_batch1_ctxv1",
                "kgcoop": "vit_b16_ep100_ctxv1", "maple": "vit_b16_c2_ep5_batch4_2ctx"}
    for m, trainer in METHODS.items():
        for name in (f"base2new_train_{m}.sh", f"base2new_test_{m}.sh", f"base2new_train_{m}_datasets.sh",
                     f"base2new_test_{m}_datasets.sh", "parse_all_results.sh"):
            path = os.path.join(REPO, "scripts", m, name)
            assert os.access(path, os.X_OK), path
            text = open(path).read()
            if name != "parse_all_results.sh":
                assert f"cpt_run {m} " in text, path
        assert (catalog.get_method(m).trainer, catalog.get_method(m).config) == (trainer, defaults[m])


def test_real_configs_load_epoch(tmp_path):
    """Against the repository's own configs (when they exist): --load-epoch equals MAX_EPOCH."""
    expect = {"coop": 50, "cocoop": 10, "kgcoop": 100, "maple": 5}
    checked = 0
    for m, ep in expect.items():
        trainer, cfg = catalog.get_method(m).trainer, catalog.get_method(m).config
        path = os.path.join(REPO, "configs", "trainers", trainer, cfg + ".yaml")
        if not os.path.isfile(path) or not os.path.isfile(os.path.join(REPO, "configs/datasets/dtd.yaml")):
            continue
        env = dict(os.environ, DATA="/nonexistent", DRY_RUN="1", OUTPUT=str(tmp_path / "dry"))
        for k in ("CFG", "CALIB", "OPTS", "LOAD_EPOCH", "SHOTS"):
            env.pop(k, None)
        p = subprocess.run(["bash", os.path.join(REPO, "scripts", m, f"base2new_test_{m}.sh"), "dtd", "1"],
                           env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert f"--load-epoch {ep} " in p.stdout
        checked += 1
    if not checked:
        pytest.skip("configs/trainers/* or configs/datasets/dtd.yaml not in the repository yet")


def test_finished_rule_same_in_bash_and_python(tmp_path):
    """The job scripts' grep and catalog.is_finished read one pattern (FINISHED_ERE) the same way."""
    texts = {'{"status": "finished"}': True, '{"status":"finished"}': True, '{"status" :\t"finished", "x": 1}': True,
             '{"status": "failed"}': False, '{"x": "finished"}': False, '{"status": "finished_not"}': False, "": False}
    for i, (text, expected) in enumerate(texts.items()):
        d = tmp_path / f"run{i}"
        d.mkdir()
        (d / "results.json").write_text(text)
        grep = subprocess.run(["bash", "-c", catalog.finished_test_sh(str(d))]).returncode == 0
        assert catalog.is_finished(str(d)) == grep == expected, text
    assert not catalog.is_finished(str(tmp_path / "missing"))
    assert subprocess.run(["bash", "-c", catalog.finished_test_sh(str(tmp_path / "missing"))]).returncode != 0
