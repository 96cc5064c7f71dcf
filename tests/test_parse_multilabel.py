"""scripts/parse_results.py: the multi-label base-to-new table and the domain-generalisation table,
on handwritten trees with numbers worked out by hand (percent, as the runs write them).

Base-to-new, CoOp / world_bce_ep20 / calibration none / 16 shots, seeds 1 and 2:

| dataset | side | seed 1 | seed 2 | mean | sample std |
|---|---|---|---|---|---|
| voc_lt | base mAP | 60 | 64 | 62 | sqrt(8) = 2.8284 |
| voc_lt | new mAP | 40 | 44 | 42 | 2.8284 |
| voc_lt | base CF1 / OF1 | 30 / 50 | 34 / 50 | 32 / 50 | 2.8284 / 0 |
| voc_lt | base ECE | 2 | 4 | 3 | 1.4142 |
| voc_lt | new ECE | 6 | 6 | 6 | 0 |
| voc_lt | base ECE head / tail | 1 / 9 | 3 / 11 | 2 / 10 | 1.4142 |
| coco2014 | base mAP | 70 | 70 | 70 | 0 |
| coco2014 | new mAP | 50 | 60 | 55 | 7.0711 |
| coco2014 | ECE base / new | 1 / 3 | 1 / 5 | 1 / 4 | |

HM (of mAP): voc_lt 2*62*42/104 = 50.0769; coco2014 2*70*55/125 = 61.6. Average row: base mAP 66,
new mAP 48.5, HM 2*66*48.5/114.5 = 55.9127; base ECE 2, new ECE 5; base ECE head 2 (voc_lt only).

Domain generalisation, TaIDPT / vit_b16 / ccr, seeds 1 and 2: source coco2014 mAP 70, 72 (71 +-
1.4142), ECE 3, 5 (4 +- 1.4142); target coco2017 mAP 66, 68 (67); target coco_lt mAP 50, 54 (52 +-
2.8284), ECE tail 8, 10 (9 +- 1.4142).
"""
import csv
import io
import os

import pytest

from cpt.cli.results import parse as pr
from tests.fake_runs import write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, trainer, config, calib, dataset, seed, subsample, metrics):
    write_results(path, trainer, config, dataset, seed, subsample, calib, dict(metrics, accuracy=95.0))


def b2n(root, split, dataset, seed, **m):
    cfgdir = "world_bce_ep20"
    path = os.path.join(root, "base2new", split, dataset, "shots_16", "CoOp", cfgdir, f"seed{seed}")
    write(path, "CoOp", "world_bce_ep20", "none", dataset, seed, "base" if split == "train_base" else "new", m)


def dg(root, kind, dataset, seed, **m):
    path = os.path.join(root, "dg", kind, dataset, "shots_16", "TaIDPT", "vit_b16_ccr", f"seed{seed}")
    write(path, "TaIDPT", "vit_b16", "ccr", dataset, seed, "all", m)


@pytest.fixture
def tree(tmp_path):
    root = str(tmp_path)
    for seed, (bm, nm, cf, ece, head, tail) in {1: (60, 40, 30, 2, 1, 9), 2: (64, 44, 34, 4, 3, 11)}.items():
        b2n(root, "train_base", "voc_lt", seed, mAP=bm, cf1=cf, of1=50, ece=ece, ece_head=head, ece_tail=tail)
        b2n(root, "test_new", "voc_lt", seed, mAP=nm, cf1=20, of1=40, ece=6)
    for seed, (nm, ece) in {1: (50, 3), 2: (60, 5)}.items():
        b2n(root, "train_base", "coco2014", seed, mAP=70, cf1=40, of1=60, ece=1)
        b2n(root, "test_new", "coco2014", seed, mAP=nm, cf1=30, of1=50, ece=ece)
    for seed, (m, e) in {1: (70, 3), 2: (72, 5)}.items():
        dg(root, "train", "coco2014", seed, mAP=m, ece=e)
    for seed, m in {1: 66, 2: 68}.items():
        dg(root, "test", "coco2017", seed, mAP=m, ece=4)
    for seed, (m, t) in {1: (50, 8), 2: (54, 10)}.items():
        dg(root, "test", "coco_lt", seed, mAP=m, ece=6, ece_head=2, ece_medium=4, ece_tail=t)
    return root


def rows_of(text):
    return {r["dataset"]: r for r in csv.DictReader(io.StringIO(text))}


def test_multilabel_table_is_automatic_with_hm_of_map(tree, capsys):
    assert pr.main([tree, "--format", "csv"]) == 0
    out = capsys.readouterr()
    rows = rows_of(out.out)
    header = list(rows["voc_lt"])
    assert header[:4] == ["dataset", "base_map", "base_map_std", "new_map"]
    for col in ("hm", "base_cf1", "new_of1", "base_ece", "new_ece", "base_ece_head", "base_ece_tail"):
        assert col in header, header
    assert "base_ece_medium" not in header  # no run reports it
    v = rows["voc_lt"]
    assert float(v["base_map"]) == 62 and float(v["base_map_std"]) == pytest.approx(2.8284, abs=1e-4)
    assert float(v["new_map"]) == 42 and float(v["hm"]) == pytest.approx(50.0769, abs=1e-4)
    assert float(v["base_cf1"]) == 32 and float(v["base_of1"]) == 50 and float(v["base_of1_std"]) == 0
    assert float(v["base_ece"]) == 3 and float(v["base_ece_std"]) == pytest.approx(1.4142, abs=1e-4)
    assert float(v["new_ece"]) == 6 and float(v["base_ece_head"]) == 2 and float(v["base_ece_tail"]) == 10
    c = rows["coco2014"]
    assert float(c["new_map"]) == 55 and float(c["new_map_std"]) == pytest.approx(7.0711, abs=1e-4)
    assert float(c["hm"]) == pytest.approx(61.6, abs=1e-4) and c["base_ece_head"] == ""
    a = rows["average"]
    assert float(a["base_map"]) == 66 and float(a["new_map"]) == 48.5
    assert float(a["hm"]) == pytest.approx(55.9127, abs=1e-4)
    assert float(a["base_ece"]) == 2 and float(a["new_ece"]) == 5 and float(a["base_ece_head"]) == 2
    assert "absent" not in out.err  # datasets without head/medium/tail groups are not a problem
    # markdown: mAP columns and HM labelled as such
    assert pr.main([tree, "--multilabel"]) == 0
    md = capsys.readouterr().out
    assert "| Dataset | Base mAP | New mAP | HM | Base CF1 | New CF1 | Base OF1 | New OF1 | Base ECE |" in md
    assert "| voc_lt | 62.00 ± 2.83 | 42.00 ± 2.83 | 50.08 |" in md


def test_domain_generalisation_table(tree, capsys):
    assert pr.main([tree, "--dg", "--format", "csv"]) == 0
    out = capsys.readouterr()
    (row,) = list(csv.DictReader(io.StringIO(out.out)))
    assert (row["trainer"], row["config"], row["calibration"]) == ("TaIDPT", "vit_b16", "ccr")
    cols = [k for k in row if not k.endswith("_std")][4:]
    assert cols[:2] == ["coco2014_map", "coco2014_ece"]  # the source first
    assert float(row["coco2014_map"]) == 71 and float(row["coco2014_ece_std"]) == pytest.approx(1.4142, abs=1e-4)
    assert float(row["coco2017_map"]) == 67 and float(row["coco_lt_map"]) == 52
    assert float(row["coco_lt_map_std"]) == pytest.approx(2.8284, abs=1e-4)
    assert float(row["coco_lt_ece_tail"]) == 9 and float(row["coco_lt_ece_head"]) == 2
    assert "coco2017_ece_head" not in row  # only COCO-LT defines the groups
    assert pr.main([tree, "--dg"]) == 0
    md = capsys.readouterr().out
    assert "| TaIDPT (vit_b16) | ccr | 71.00 ± 1.41 | 4.00 ± 1.41 |" in md and "coco2014 (source) mAP" in md
    # a missing target seed is listed, not averaged
    os.remove(os.path.join(tree, "dg", "test", "coco_lt", "shots_16", "TaIDPT", "vit_b16_ccr", "seed2",
                           "results.json"))
    assert pr.main([tree, "--dg", "--strict"]) == 2
    md = capsys.readouterr().out
    assert "coco_lt target seed2: unfinished" in md and "| 50.00 |" in md
