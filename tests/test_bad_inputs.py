"""Bad input and faults through train.py's command line: one test per row of the table.

Every failing row expects exit status 2, one stderr line ``error: <Type>: <message>`` naming the file
or key and what was expected, no traceback (``--debug`` / ``CPT_DEBUG=1`` show it), and nothing in
the output folder that the drivers, the parser or a resumed run would take for a result. Rows marked
"before any output" leave the output folder uncreated; the others leave ``log.txt`` and a
``results.json`` with status ``failed`` and the message. Runs are EngineTiny (tests/engine_fixtures.py)
on the DTD fixture tree of tests/dataset_fixtures.py: a second each.
"""
import json
import os
import signal
import sys
import time

import pytest
import torch

import tests.engine_fixtures  # noqa: F401  (registers EngineTiny)
from tests.dataset_fixtures import DTD_CLASSES, jpeg_bytes, make_dtd
from tests.engine_fixtures import EngineTiny
from tests.fault_fixtures import assert_no_result, assert_one_line, checkpoints, popen, read_only, results, run_process
from tests.runs import REPO, cli, tiny_args


@pytest.fixture
def dtd(tmp_path):
    root = str(tmp_path / "data")
    make_dtd(root)
    return root


@pytest.fixture
def out(tmp_path):
    return str(tmp_path / "out")


def _fails_before_output(capsys, argv, out):
    line = assert_one_line(*cli(argv, capsys))
    assert not os.path.exists(out), os.listdir(out)
    return line


def _fails_at_build(capsys, argv, out):
    line = assert_one_line(*cli(argv, capsys))
    assert_no_result(out)
    res = results(out)
    assert res["status"] == "failed" and res["error"].splitlines()[0] in line
    return line


def _images(root, cls):
    d = os.path.join(root, "dtd", "images", cls)
    return sorted(os.path.join(d, f) for f in os.listdir(d))


def _write_split(root, train, val, test):
    ddir = os.path.join(root, "dtd")
    rel = [[[os.path.relpath(p, os.path.join(ddir, "images")), y, DTD_CLASSES[y]] for p, y in part]
           for part in (train, val, test)]
    path = os.path.join(ddir, "split_zhou_DescribableTextures.json")
    with open(path, "w") as f:
        json.dump(dict(zip(("train", "val", "test"), rel)), f)
    return path


def _split_items(root):
    return [(p, y) for y, c in enumerate(DTD_CLASSES) for p in _images(root, c)]


# ----------------------------------------------------------------------------- dataset
def test_dataset_root_missing(capsys, tmp_path, out):
    line = _fails_at_build(capsys, tiny_args(str(tmp_path / "nope"), out), out)
    assert line == f"error: DatasetLayoutError: DescribableTextures: dataset root {tmp_path / 'nope'} does not exist"


def test_dataset_wrong_layout(capsys, dtd, out):
    os.rename(os.path.join(dtd, "dtd", "images"), os.path.join(dtd, "dtd", "pictures"))
    line = _fails_at_build(capsys, tiny_args(dtd, out), out)
    assert "no split file split_zhou_DescribableTextures.json in" in line
    assert f"because {os.path.join(dtd, 'dtd', 'images')} is missing" in line
    assert "Expected layout" in results(out)["error"] and "images/<class>/" in results(out)["error"]


@pytest.mark.parametrize("damage,error", [("truncated", "JSONDecodeError"), ("text", "JSONDecodeError"),
                                          ("binary", "UnicodeDecodeError")])
def test_split_file_truncated_or_not_json(capsys, dtd, out, damage, error):
    items = _split_items(dtd)
    path = _write_split(dtd, items[0::3], items[1::3], items[2::3])
    with open(path, "rb") as f:
        blob = f.read()
    with open(path, "wb") as f:
        f.write({"truncated": blob[:len(blob) // 2], "text": b"train: a.jpg\n", "binary": b"\x89PNG\r\n\x1a\n"}[damage])
    line = _fails_at_build(capsys, tiny_args(dtd, out), out)
    assert f"DescribableTextures: split file {path} is malformed ({error}:" in line
    assert 'expected {"train"|"val"|"test": [[relative_path, label, classname], ...]}' in line


def test_split_entries_with_missing_images(capsys, dtd, out):
    items = _split_items(dtd)
    ghosts = [(os.path.join(dtd, "dtd", "images", "banded", f"ghost_{i}.jpg"), 0) for i in range(7)]
    path = _write_split(dtd, items[0::3] + ghosts, items[1::3], items[2::3])
    line = _fails_at_build(capsys, tiny_args(dtd, out), out)
    shown = ", ".join(p for p, _ in ghosts[:5])
    assert line == (f"error: DatasetLayoutError: DescribableTextures: split file {path} lists 7 train image(s) "
                    f"(of {len(items[0::3]) + 7}) that do not exist, e.g. {shown}, ...")


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("damage", ["empty", "text", "truncated"])
def test_corrupt_image_stops_with_its_name(capsys, dtd, out, damage, workers):
    """Read errors are converted where the loader opens the image (no up-front decode of every file:
    that would cost minutes on ImageNet); every image of one class is damaged, so epoch 1 meets one."""
    bad = _images(dtd, "bubbly")
    data = {"empty": b"", "text": b"this is not an image\n", "truncated": jpeg_bytes()[:len(jpeg_bytes()) // 2]}
    for p in bad:
        with open(p, "wb") as f:
            f.write(data[damage])
    line = _fails_at_build(capsys, tiny_args(dtd, out, "DATALOADER.NUM_WORKERS", workers), out)
    assert line.startswith("error: OSError: Cannot read image ")
    assert line.split("Cannot read image ", 1)[1].split(": ", 1)[0] in bad


# ----------------------------------------------------------------------------- names
@pytest.mark.parametrize("flag,bad,expect", [
    ("--trainer", "EngineTinny", '"EngineTinny" is not registered in the TRAINER registry; closest: EngineTiny'),
    ("DATASET.NAME", "DescribableTexture",
     '"DescribableTexture" is not registered in the DATASET registry; closest: DescribableTextures'),
    ("CALIB.POSTHOC", "temprature", "unknown post-hoc calibrator 'temprature' (CALIB.POSTHOC). "
                                    "Did you mean ['temperature']?"),
])
def test_unknown_names_before_any_output(capsys, dtd, out, flag, bad, expect):
    argv = tiny_args(dtd, out, flag, bad) if flag.isupper() else tiny_args(dtd, out, flags=[flag, bad])
    assert expect in _fails_before_output(capsys, argv, out)


@pytest.mark.parametrize("where", ["command_line", "yaml"])
def test_unknown_calibrator_tcpx(capsys, dtd, out, tmp_path, where):
    """``CALIB.METHOD tcpx``: yacs said 'Type mismatch (list vs str)'; now a bare word is a one-name list."""
    if where == "yaml":
        cfg = tmp_path / "calib.yaml"
        cfg.write_text("CALIB:\n  METHOD: tcpx\n")
        argv = tiny_args(dtd, out, flags=["--calib-config-file", cfg])
    else:
        argv = tiny_args(dtd, out, "CALIB.METHOD", "tcpx")
    line = _fails_before_output(capsys, argv, out)
    assert line.startswith("error: KeyError: unknown calibration regularizer 'tcpx' (CALIB.METHOD). "
                           "Did you mean ['tcpt']?")


def test_unknown_backbone(capsys, dtd, out):
    argv = tiny_args(dtd, out, "MODEL.BACKBONE.NAME", "world-tiyn", trainer="CoOp")
    line = _fails_at_build(capsys, argv, out)
    assert line.startswith("error: BackboneError: MODEL.BACKBONE.NAME 'world-tiyn' is not a known backbone; "
                           "closest: world-tiny")


# ----------------------------------------------------------------------------- config keys and values
def test_misspelled_key_in_yaml(capsys, dtd, out, tmp_path):
    cfg = tmp_path / "method.yaml"
    cfg.write_text("OPTIM:\n  NAME: sgd\n  MAX_EPOCHS: 3\n")
    line = _fails_before_output(capsys, tiny_args(dtd, out, flags=["--config-file", cfg]), out)
    assert line == (f"error: ConfigError: --config-file {cfg}: unknown config key OPTIM.MAX_EPOCHS; "
                    f"did you mean OPTIM.MAX_EPOCH?")


def test_misspelled_key_on_command_line(capsys, dtd, out):
    line = _fails_before_output(capsys, tiny_args(dtd, out, "DATALOADER.TRAIN_X.BATCHSIZE", "8"), out)
    assert line == ("error: ConfigError: command line: unknown config key DATALOADER.TRAIN_X.BATCHSIZE; "
                    "did you mean DATALOADER.TRAIN_X.BATCH_SIZE?")


def test_wrong_value_type(capsys, dtd, out, tmp_path):
    line = _fails_before_output(capsys, tiny_args(dtd, out, "OPTIM.MAX_EPOCH", "two"), out)
    assert line == "error: ConfigError: command line: OPTIM.MAX_EPOCH expects an int (current value 1), got 'two'"
    cfg = tmp_path / "d.yaml"
    cfg.write_text("DATASET:\n  NUM_SHOTS: [1, 2]\n")
    line = _fails_before_output(capsys, tiny_args(dtd, out, flags=["--dataset-config-file", cfg]), out)
    assert line == (f"error: ConfigError: --dataset-config-file {cfg}: DATASET.NUM_SHOTS expects an int "
                    f"(current value -1), got [1, 2]")


def test_yaml_syntax_error(capsys, dtd, out, tmp_path):
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("OPTIM:\n  LR: 0.1\n    NAME: [sgd\n")
    line = _fails_before_output(capsys, tiny_args(dtd, out, flags=["--config-file", cfg]), out)
    assert line.startswith(f"error: ConfigError: --config-file {cfg} is not valid YAML at line 3: ")


@pytest.mark.parametrize("tail,expect", [
    (["OPTIM.LR"], "error: ConfigError: command line: trailing options must be KEY VALUE pairs; "
                   "OPTIM.LR has no value"),
    (["--seeds", "2"], "error: ConfigError: unknown option --seeds (options after the first KEY VALUE pair must "
                       "be config KEY VALUE pairs too); did you mean --seed?"),
])
def test_odd_trailing_options(capsys, dtd, out, tail, expect):
    assert _fails_before_output(capsys, tiny_args(dtd, out, *tail), out) == expect


def test_unknown_flag_is_one_line(capsys, dtd, out):
    argv = ["--output-dir", out, "--sed", "1"]
    code, o, err = cli(argv, capsys)
    assert code == 2 and err.strip().splitlines() == [
        f"error: unrecognized arguments: --sed (see {os.path.basename(sys.argv[0])} --help)"]
    assert not os.path.exists(out)


def test_invalid_subsample_classes(capsys, dtd, out):
    line = _fails_before_output(capsys, tiny_args(dtd, out, "DATASET.SUBSAMPLE_CLASSES", "Base"), out)
    assert line == ("error: ConfigError: DATASET.SUBSAMPLE_CLASSES must be one of all, base, new, got 'Base'; "
                    "did you mean 'base'?")


@pytest.mark.parametrize("method,key", [("tcpt", "CALIB.TCPT.LAMBDA"), ("tcpt", "CALIB.TCPT.ALPHA"),
                                        ("ccr", "CALIB.CCR.LAMBDA"), ("mbls", "CALIB.MBLS.MARGIN"),
                                        ("penalty", "CALIB.PENALTY.WEIGHT"), ("dor", "CALIB.DOR.LAMBDA")])
def test_negative_calibration_weight_refused_at_build(capsys, dtd, out, method, key):
    line = _fails_before_output(capsys, tiny_args(dtd, out, "CALIB.METHOD", method, key, "-1"), out)
    assert line == f"error: ValueError: {key} must be a number >= 0, got -1.0"


def test_absurd_dac_parameters_refused(capsys, dtd, out):
    line = _fails_before_output(capsys, tiny_args(dtd, out, "CALIB.POSTHOC", "dac", "CALIB.DAC.K", "0"), out)
    assert line == "error: ConfigError: CALIB.DAC.K must be an int >= 1 (neighbours per class), got 0"


# ----------------------------------------------------------------------------- eval-only and checkpoints
@pytest.fixture
def trained(dtd, tmp_path, capsys):
    d = str(tmp_path / "trained")
    assert cli(tiny_args(dtd, d), capsys)[0] == 0
    return d


def test_eval_only_without_model_dir(capsys, dtd, out):
    line = _fails_before_output(capsys, tiny_args(dtd, out, flags=["--eval-only"]), out)
    assert line == "error: ValueError: --eval-only needs --model-dir (the directory of a trained run)"
    line = _fails_before_output(capsys, tiny_args(dtd, out, flags=["--eval-only", "--model-dir", out + "x"]), out)
    assert line == f"error: FileNotFoundError: --model-dir {out}x does not exist"


def test_eval_only_load_epoch(capsys, dtd, out, trained):
    """No --load-epoch: the best checkpoint, else the latest complete one (Dassl); a missing epoch fails."""
    assert cli(tiny_args(dtd, out, flags=["--eval-only", "--model-dir", trained]), capsys)[0] == 0
    assert results(out)["metrics"] == results(trained)["metrics"]
    other = out + "2"
    line = _fails_at_build(capsys, tiny_args(dtd, other, flags=["--eval-only", "--model-dir", trained,
                                                                "--load-epoch", "7"]), other)
    want = os.path.join(trained, "model", "model.pth.tar-7")
    assert line == (f"error: CheckpointError: No checkpoint for model 'model' at {want} "
                    f"(found: checkpoint, model.pth.tar-1)")


@pytest.mark.parametrize("kind", ["truncated", "foreign_object", "other_model"])
def test_eval_only_bad_checkpoint(capsys, dtd, out, trained, kind):
    path = os.path.join(trained, "model", "model.pth.tar-1")
    if kind == "truncated":
        with open(path, "rb") as f:
            blob = f.read()
        with open(path, "wb") as f:
            f.write(blob[:len(blob) // 2])
    elif kind == "foreign_object":
        torch.save(torch.zeros(3), path)
    else:
        torch.save({"state_dict": {"encoder.weight": torch.zeros(2, 2)}, "epoch": 1}, path)
    size = os.path.getsize(path)
    line = _fails_at_build(capsys, tiny_args(dtd, out, flags=["--eval-only", "--model-dir", trained,
                                                              "--load-epoch", "1"]), out)
    expect = {"truncated": f"error: CheckpointError: checkpoint {path} ({size:,} bytes) is truncated or not a "
                           f"PyTorch file: ",
              "foreign_object": f"error: CheckpointError: checkpoint {path} is not a checkpoint of this project: "
                                f"expected a dict with 'state_dict', 'epoch', 'optimizer' (as save_checkpoint writes), "
                                f"got Tensor",
              "other_model": f"error: RuntimeError: Checkpoint {path} does not match the model's learnable parameters: "
                             f"missing ['head.bias', 'head.weight'], unexpected ['encoder.weight']"}[kind]
    assert line.startswith(expect), line


# ----------------------------------------------------------------------------- training faults
def test_nan_loss_stops_at_the_first_non_finite_batch(capsys, dtd, out, monkeypatch):
    seen = []
    original = EngineTiny.forward_backward

    def recording(self, batch):
        seen.append((self.epoch, self.batch_idx, None))
        summary = original(self, batch)
        seen[-1] = (self.epoch, self.batch_idx, summary["loss"])
        return summary

    monkeypatch.setattr(EngineTiny, "forward_backward", recording)
    line = _fails_at_build(capsys, tiny_args(dtd, out, "OPTIM.LR", "1e30", epochs=3), out)
    epoch, batch, loss = seen[-1]
    assert loss is None  # the last batch that ran is the one that raised
    assert all(torch.isfinite(torch.tensor(s[2])) for s in seen[:-1]) and epoch == 0
    assert line.startswith("error: FloatingPointError: training loss is ")
    assert f" at epoch 1, batch {batch + 1} (the first non-finite loss; learning rate 1e+30): training stopped" in line
    assert results(out)["status"] == "failed" and results(out)["metrics"] == {}


def test_non_finite_test_metrics_are_not_finished(capsys, dtd, out, monkeypatch):
    def nan_logits(self, x):
        logits, feats = self.model(x)
        return {"logits": logits * float("nan"), "features": feats}

    monkeypatch.setattr(EngineTiny, "model_inference", nan_logits)
    line = assert_one_line(*cli(tiny_args(dtd, out), capsys))
    assert line == "error: ValueError: calibration.metrics.ece: confidences contains NaN or infinite values"
    res = results(out)
    assert res["status"] == "failed" and res["metrics"] == {}
    assert [os.path.basename(p) for p in checkpoints(out)] == ["model.pth.tar-1"]  # epoch 1 stays resumable


def test_a_nan_metric_from_any_source_is_not_finished(capsys, dtd, out, monkeypatch):
    """The last guard in train.py: whatever the evaluator returns, NaN/inf metrics never say finished."""
    original = EngineTiny.test

    def test_then_nan(self, split=None):
        value = original(self, split)
        self.last_results["test"]["brier"] = float("inf")
        return value

    monkeypatch.setattr(EngineTiny, "test", test_then_nan)
    line = assert_one_line(*cli(tiny_args(dtd, out), capsys))
    assert line == ("error: FloatingPointError: test metrics brier are not finite (the model's outputs are NaN or "
                    "inf); the run is not reported as finished")
    assert results(out)["status"] == "failed"


# ----------------------------------------------------------------------------- output folder
def _stopped(pid, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return True
        time.sleep(0.2)
    return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_two_runs_into_one_output_folder(capsys, dtd, out):
    """Run A stops itself (SIGSTOP) at its first batch, holding the lock: run B refuses. A is then
    killed (SIGKILL: its lock stays behind); the lock is stale, and the next run takes it over."""
    a = popen(tiny_args(dtd, out), env={"CPT_FAULT": "batch:1:STOP"}, engine_fixtures=True)
    try:
        assert _stopped(a.pid)
        line = assert_one_line(*cli(tiny_args(dtd, out), capsys))
        lock = os.path.join(out, ".run.lock")
        assert line.startswith(f"error: RunLockError: output folder {out} is in use by pid {a.pid} on ")
        assert line.endswith(f"lock file {lock}. Wait for that run, use another --output-dir, or delete the lock "
                             "file if that run is gone")
        assert results(out)["status"] == "running"  # A's record (issue 26: a run start marks it); B wrote none
    finally:
        a.send_signal(signal.SIGKILL)
        a.wait()
    with open(lock) as f:
        assert json.load(f)["pid"] == a.pid
    assert cli(tiny_args(dtd, out), capsys)[0] == 0
    assert results(out)["status"] == "finished" and not os.path.exists(lock)


def test_lock_of_another_host_or_reused_pid(tmp_path):
    import socket

    from cpt.engine.runlock import RunLock, RunLockError, is_stale, process_start_time

    me = {"pid": os.getpid(), "host": socket.gethostname(), "start": process_start_time(os.getpid())}
    assert not is_stale(me)
    assert is_stale(dict(me, start=me["start"] + 1)) == (me["start"] is not None)  # pid reused by another process
    assert not is_stale(dict(me, pid=2 ** 22 + 12345, host="elsewhere"))         # never guess about other hosts
    folder = str(tmp_path / "o")
    os.makedirs(folder)
    with open(os.path.join(folder, ".run.lock"), "w") as f:
        json.dump(dict(me, host="elsewhere", time=0), f)
    with pytest.raises(RunLockError, match="in use by pid .* on elsewhere"):
        RunLock(folder).acquire()


def test_read_only_dataset_root_works(capsys, dtd, out):
    """Built splits and few-shot draws go to the cache, never into DATASET.ROOT."""
    with read_only(dtd):
        code, o, err = cli(tiny_args(dtd, out, "DATASET.NUM_SHOTS", "2"), capsys)
    assert code == 0, err
    assert results(out)["status"] == "finished"


@pytest.mark.parametrize("exists", [True, False])
def test_unwritable_output_folder(capsys, dtd, tmp_path, exists):
    parent = tmp_path / "ro"
    out = parent / "run"
    os.makedirs(out if exists else parent)
    with read_only(str(out if exists else parent)):
        line = assert_one_line(*cli(tiny_args(dtd, str(out)), capsys))
    assert line == f"error: RunLockError: cannot write into output folder {out}: Permission denied"
    assert os.listdir(out) == [] if exists else not os.path.exists(out)


# ----------------------------------------------------------------------------- tracebacks on request
@pytest.mark.parametrize("how", ["plain", "--debug", "CPT_DEBUG"])
def test_traceback_only_on_request(dtd, tmp_path, how):
    out = str(tmp_path / "o")
    flags = ["--debug"] if how == "--debug" else []
    p = run_process(tiny_args(dtd, out, "DATASET.SUBSAMPLE_CLASSES", "bas", flags=flags),
            env={"CPT_DEBUG": "1"} if how == "CPT_DEBUG" else None, engine_fixtures=True)
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last == ("error: ConfigError: DATASET.SUBSAMPLE_CLASSES must be one of all, base, new, got 'bas'; "
                    "did you mean 'base'?")
    assert ("Traceback (most recent call last)" in p.stderr) == (how != "plain")
    assert "Traceback" not in p.stdout and not os.path.exists(out)


# ----------------------------------------------------------------------------- the checked merge is yacs' merge
def test_checked_merge_equals_yacs_on_every_shipped_config():
    """engine/config_check.merge_file gives what yacs' merge_from_file gives on every yaml in configs/."""
    import glob

    from cpt import datasets
    from cpt.engine.config import get_cfg_default
    from cpt.engine.config_check import merge_file
    from cpt.trainers.config import extend_cfg

    paths = sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True))
    assert len(paths) > 40
    for path in paths:
        ours, theirs = get_cfg_default(), get_cfg_default()
        for cfg in (ours, theirs):
            datasets.extend_cfg(extend_cfg(cfg))
        merge_file(ours, path, "--config-file")
        theirs.merge_from_file(path)
        assert ours.dump() == theirs.dump(), path
