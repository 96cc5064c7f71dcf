"""The multi-label domain-generalisation scripts run for real (not only DRY_RUN): train CoOp-BCE
(and TaI-DPT, on the COCO captions) on COCO-2014, evaluate the trained prompt on COCO-2017 val and
the COCO-LT test set, and parse the runs with ``parse_results.py --dg``.

Fixture trees in the real COCO layout (5 categories, 4 px JPEGs) under ``tmp_path``, the shipped
world CLIP as the backbone, 1 epoch: the numbers are not the point, the plumbing is. Checks: the
output layout of the multi-label scripts (``scripts/common.sh`` / ``scripts/drive.py``), that the targets were scored with the
source's checkpoint (same prompt, so COCO-2017 and COCO-LT, which hold the same val2017 images,
give identical mAP), the COCO-LT head/medium/tail groups, and that the parser's table carries the
numbers of each run's ``results.json``.
"""
import csv
import io
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests import dataset_fixtures as fx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(cmd, env):
    p = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


@pytest.mark.parametrize("method,trainer,cfg,opts", [
    ("coop", "CoOp", "world_bce_ep20", ""),
    # TaI-DPT on the COCO captions file; COCO-2014 has no validation split, so the config's map
    ("taidpt", "TaIDPT", "world", "TRAINER.TAIDPT.PROB_FIT config TEST.FINAL_MODEL last_step"),
])
def test_dg_train_test_and_parse(tmp_path, method, trainer, cfg, opts):
    data = tmp_path / "data"
    fx.make_coco2014(str(data))
    fx.make_coco_lt(str(data))  # train2017 + longtail list + val2017 (the COCO-2017 val target too)
    out = tmp_path / "output"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATASETS", "SEEDS", "CFG", "CALIB", "SHOTS", "OPTS", "GPU", "LOAD_EPOCH", "DRY_RUN",
                        "CUDA_VISIBLE_DEVICES", "DG_SOURCE", "DG_TARGETS", "METHOD")}
    env.update(PYTHON=sys.executable, DATA=str(data), OUTPUT=str(out), CPT_CACHE_DIR=str(tmp_path / "cache"),
               METHOD=method, CFG=cfg, SHOTS="0", SEEDS="1", DG_TARGETS="coco2017 coco_lt",
               OPTS="OPTIM.MAX_EPOCH 1 DATALOADER.TRAIN_X.BATCH_SIZE 4 TEST.RELIABILITY_DIAGRAM False " + opts)
    _run(["bash", "scripts/multilabel/dg_train_ml.sh"], env)
    _run(["bash", "scripts/multilabel/dg_test_ml.sh"], env)

    def results(side, ds):
        path = out / "dg" / side / ds / "shots_0" / trainer / cfg / "seed1" / "results.json"
        with open(path) as f:
            return json.load(f)

    src = results("train", "coco2014")
    t17, tlt = results("test", "coco2017"), results("test", "coco_lt")
    for r in (src, t17, tlt):
        assert r["status"] == "finished" and 0 < r["metrics"]["mAP"] <= 100
    if method == "taidpt":  # trained on the captions that name a class (2 of the fixture's 3)
        assert src["n_captions"] == 2 and src["train_source"] == "captions"
    # the targets hold the same val2017 images and were scored with the same trained prompt
    assert t17["metrics"]["mAP"] == pytest.approx(tlt["metrics"]["mAP"], abs=1e-9)
    assert {"mAP_head", "mAP_medium", "mAP_tail"} <= set(tlt["metrics"])
    log = (out / "dg" / "test" / "coco2017" / "shots_0" / trainer / cfg / "seed1" / "log.txt").read_text()
    assert os.path.join("dg", "train", "coco2014") in log  # --model-dir of the source run

    p = _run([sys.executable, "scripts/parse_results.py", str(out), "--dg", "--format", "csv"], env)
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert len(rows) == 1, p.stdout
    row = rows[0]
    cells = {k: v for k, v in row.items() if v not in (None, "")}
    map_cols = [k for k in cells if "map" in k.lower() and "std" not in k.lower()]
    values = sorted(round(float(cells[k]), 2) for k in map_cols)
    expected = sorted(round(r["metrics"]["mAP"], 2) for r in (src, t17, tlt))
    assert values == expected, row
