"""scripts/parse_results.py on handwritten base-to-new trees, numbers worked out by hand.

Tree (CoOp / vit_b16_ep50_ctxv1 / calibration none / 16 shots), metrics in percent:

| dataset | side | seed 1 | seed 2 | seed 3 | mean | sample std (ddof=1) |
|---|---|---|---|---|---|---|
| dtd | base acc | 80 | 82 | 84 | 82 | 2 |
| dtd | base ece | 2 | 3 | 4 | 3 | 1 |
| dtd | new acc | 50 | 60 | 70 (log.txt only) | 60 | 10 |
| dtd | new ece | 10 | 12 | 14 (log.txt only) | 12 | 2 |
| eurosat | base acc | 90 | 90 | 96 | 92 | sqrt(12) = 3.4641 |
| eurosat | base ece | 1 | 1 | 1 | 1 | 0 |
| eurosat | new acc | 70 | 74 | failed | 72 | sqrt(8) = 2.8284 |
| eurosat | new ece | 5 | 7 | failed | 6 | sqrt(2) = 1.4142 |
| caltech101 | base acc | 96 | 98 | missing | 97 | sqrt(2) = 1.4142 |
| caltech101 | base ece | 2 | 4 | missing | 3 | sqrt(2) |
| caltech101 | new acc | 94 | 92 | 93 | 93 | 1 |
| caltech101 | new ece | 3 | 3 | 3 | 3 | 0 |

HM: dtd 2*82*60/142 = 69.2958; eurosat 2*92*72/164 = 80.7805; caltech101 2*97*93/190 = 94.9579.
Average row: base acc 271/3 = 90.3333, new acc 225/3 = 75, hm = 40650/496 = 81.9556,
base ece 7/3 = 2.3333, new ece 21/3 = 7.
"""
import csv
import io
import math
import os

import pytest

from cpt.cli.results import parse as pr
from tests.fake_runs import write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COOP = ("CoOp", "vit_b16_ep50_ctxv1")


def run_dir(root, split, dataset, seed, trainer="CoOp", cfgdir="vit_b16_ep50_ctxv1", shots=16):
    return os.path.join(root, "base2new", split, dataset, f"shots_{shots}", trainer, cfgdir, f"seed{seed}")


def write_result(root, split, dataset, seed, acc, ece, status="finished", trainer="CoOp",
                 config="vit_b16_ep50_ctxv1", calib="none", extra=None):
    cfgdir = config if calib == "none" else f"{config}_{calib}"
    d = run_dir(root, split, dataset, seed, trainer, cfgdir)
    write_results(d, trainer, config, dataset, seed, "base" if split == "train_base" else "new", calib,
                  {"accuracy": acc, "ece": ece, **(extra or {})}, status=status,
                  error="CUDA out of memory" if status == "failed" else None)
    return d


LOG = """\
Loading trainer: CoOp
epoch [50/50] batch [5/5] loss 0.5
Evaluate on the *val* set
=> result
* total: 100
* correct: 10
* accuracy: 10.0%
* error: 90.0%
* ece: 99.0%
Evaluate on the *test* set
=> result
* total: 1,500
* correct: 1,050
* accuracy: 70.0%
* error: 30.0%
* macro_f1: 69.5%
* ece: 14.0%
Elapsed: 0:01:02
"""


@pytest.fixture
def tree(tmp_path):
    root = str(tmp_path / "output")
    for seed, (ba, be, na, ne) in enumerate([(80, 2, 50, 10), (82, 3, 60, 12), (84, 4, None, None)], 1):
        write_result(root, "train_base", "dtd", seed, ba, be)
        if na is not None:
            write_result(root, "test_new", "dtd", seed, na, ne)
    # dtd new seed 3: log.txt only (a run of an older parser's era / results.json lost)
    d = run_dir(root, "test_new", "dtd", 3)
    os.makedirs(d)
    with open(os.path.join(d, "log.txt"), "w") as f:
        f.write(LOG)
    for seed, (ba, be) in enumerate([(90, 1), (90, 1), (96, 1)], 1):
        write_result(root, "train_base", "eurosat", seed, ba, be)
    write_result(root, "test_new", "eurosat", 1, 70, 5)
    write_result(root, "test_new", "eurosat", 2, 74, 7)
    write_result(root, "test_new", "eurosat", 3, 0, 0, status="failed")
    write_result(root, "train_base", "caltech101", 1, 96, 2)
    write_result(root, "train_base", "caltech101", 2, 98, 4)
    for seed, na in enumerate([94, 92, 93], 1):
        write_result(root, "test_new", "caltech101", seed, na, 3)
    return root


def add_other_groups(root):
    write_result(root, "train_base", "dtd", 1, 81, 1.5, calib="tcpt")
    write_result(root, "test_new", "dtd", 1, 62, 8, calib="tcpt")
    write_result(root, "train_base", "dtd", 1, 83, 2.0, trainer="MaPLe", config="vit_b16_c2_ep5_batch4_2ctx")
    write_result(root, "test_new", "dtd", 1, 65, 5.0, trainer="MaPLe", config="vit_b16_c2_ep5_batch4_2ctx")


def run_main(capsys, *argv):
    rc = pr.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def rows_of(csv_text):
    return list(csv.DictReader(io.StringIO(csv_text)))


def approx(x, y, tol=1e-3):
    return abs(float(x) - y) < tol


def test_summary_numbers(tree):
    runs = pr.collect_runs(tree)
    assert len(runs) == 17
    log_run = [r for r in runs if r["source"] == "log.txt"]
    assert len(log_run) == 1 and log_run[0]["status"] == "finished"
    assert log_run[0]["metrics"]["accuracy"] == 70.0 and log_run[0]["metrics"]["ece"] == 14.0  # last block
    groups, problems, notes = pr.summarize(runs, ["acc", "ece"])
    assert list(groups) == [("CoOp", "vit_b16_ep50_ctxv1", "none", 16)]
    rows = {r["dataset"]: r for r in groups[("CoOp", "vit_b16_ep50_ctxv1", "none", 16)]}
    # papers' dataset order, average last
    assert [r["dataset"] for r in groups[("CoOp", "vit_b16_ep50_ctxv1", "none", 16)]] == \
        ["caltech101", "dtd", "eurosat", "average"]
    dtd, euro, cal, avg = rows["dtd"], rows["eurosat"], rows["caltech101"], rows["average"]
    assert dtd["base_acc"] == pytest.approx(82) and dtd["base_acc_std"] == pytest.approx(2)
    assert dtd["base_ece"] == pytest.approx(3) and dtd["base_ece_std"] == pytest.approx(1)
    assert dtd["new_acc"] == pytest.approx(60) and dtd["new_acc_std"] == pytest.approx(10)
    assert dtd["new_ece"] == pytest.approx(12) and dtd["new_ece_std"] == pytest.approx(2)
    assert dtd["hm"] == pytest.approx(9840 / 142) and dtd["n_seeds"] == 3
    assert euro["base_acc"] == pytest.approx(92) and euro["base_acc_std"] == pytest.approx(math.sqrt(12))
    assert euro["base_ece_std"] == pytest.approx(0)
    assert euro["new_acc"] == pytest.approx(72) and euro["new_acc_std"] == pytest.approx(math.sqrt(8))
    assert euro["new_ece"] == pytest.approx(6) and euro["new_ece_std"] == pytest.approx(math.sqrt(2))
    assert euro["hm"] == pytest.approx(13248 / 164)
    assert (euro["n_base"], euro["n_new"], euro["n_seeds"]) == (3, 2, 2)
    assert cal["base_acc"] == pytest.approx(97) and cal["base_acc_std"] == pytest.approx(math.sqrt(2))
    assert cal["new_acc"] == pytest.approx(93) and cal["new_acc_std"] == pytest.approx(1)
    assert cal["hm"] == pytest.approx(18042 / 190)
    assert (cal["n_base"], cal["n_new"], cal["n_seeds"]) == (2, 3, 2)
    assert avg["base_acc"] == pytest.approx(271 / 3) and avg["new_acc"] == pytest.approx(75)
    assert avg["hm"] == pytest.approx(40650 / 496)
    assert avg["base_ece"] == pytest.approx(7 / 3) and avg["new_ece"] == pytest.approx(7)
    assert avg["base_acc_std"] is None
    # the missing seed and the failed run are listed, nothing else
    listed = sorted((p["dataset"], p["side"], p["seed"], p["status"]) for p in problems)
    assert listed == [("caltech101", "base", 3, "missing"), ("eurosat", "new", 3, "failed")]
    assert any("eurosat" in n and "[1, 2, 3]" in n and "[1, 2]" in n for n in notes)


def test_csv(tree, capsys):
    rc, out, err = run_main(capsys, tree, "--format", "csv")
    assert rc == 0
    rows = rows_of(out)
    header = out.splitlines()[0].split(",")
    for col in ("dataset", "base_acc", "new_acc", "hm", "base_ece", "new_ece", "n_seeds", "base_acc_std"):
        assert col in header
    assert "trainer" not in header  # a single trainer/config/calibration
    assert [r["dataset"] for r in rows] == ["caltech101", "dtd", "eurosat", "average"]
    dtd, avg = rows[1], rows[3]
    assert approx(dtd["base_acc"], 82) and approx(dtd["base_acc_std"], 2) and approx(dtd["hm"], 69.2958)
    assert approx(dtd["new_ece_std"], 2) and dtd["n_seeds"] == "3"
    assert approx(avg["hm"], 81.9556) and approx(avg["new_ece"], 7) and avg["base_acc_std"] == ""
    # problems go to stderr in csv mode, stdout stays parseable
    assert "caltech101 base seed3: missing" in err
    assert "eurosat new seed3: failed" in err and "CUDA out of memory" in err


def test_markdown_and_latex(tree, capsys):
    rc, out, _ = run_main(capsys, tree)
    assert rc == 0
    assert "| Dataset | Base Acc | New Acc | HM | Base ECE | New ECE | Seeds |" in out
    assert "| DTD | 82.00 ± 2.00 | 60.00 ± 10.00 | 69.30 | 3.00 ± 1.00 | 12.00 ± 2.00 | 3 |" in out
    assert "| EuroSAT | 92.00 ± 3.46 | 72.00 ± 2.83 | 80.78 | 1.00 ± 0.00 | 6.00 ± 1.41 | 3/2 |" in out
    assert "| **Average** | **90.33** | **75.00** | **81.96** | **2.33** | **7.00** |  |" in out
    assert "Missing or failed runs (2), not averaged:" in out
    assert "caltech101 base seed3: missing" in out and "eurosat new seed3: failed" in out
    rc, out, _ = run_main(capsys, tree, "--format", "latex", "--no-std")
    assert r"\begin{tabular}{lrrrrrr}" in out
    assert r"DTD & 82.00 & 60.00 & 69.30 & 3.00 & 12.00 & 3 \\" in out
    assert r"Average & 90.33 & 75.00 & 81.96 & 2.33 & 7.00 &  \\" in out
    assert "% - CoOp/vit_b16_ep50_ctxv1/none/shots_16 caltech101 base seed3: missing" in out
    rc, out, _ = run_main(capsys, tree, "--format", "latex")
    assert r"82.00 {\scriptsize$\pm$2.00}" in out


def test_more_metrics_and_strict(tree, capsys):
    write_result(tree, "train_base", "dtd", 1, 80, 2, extra={"mce": 7.0, "adaptive_ece": 2.5})
    rc, out, _ = run_main(capsys, tree, "--format", "csv", "--metrics", "ece", "ace", "acc", "--strict")
    assert rc == 2  # missing and failed runs
    rows = rows_of(out)
    assert list(rows[0])[:9] == ["dataset", "base_acc", "base_acc_std", "new_acc", "new_acc_std", "hm",
                                 "base_ece", "base_ece_std", "new_ece"]
    dtd = rows[1]
    assert approx(dtd["base_ace"], 2.5) and dtd["base_ace_std"] == ""  # only seed 1 has it
    assert dtd["new_ace"] == ""


def test_several_groups_and_paper(tree, capsys):
    add_other_groups(tree)
    rc, out, _ = run_main(capsys, tree, "--format", "csv", "--compare-paper")
    rows = rows_of(out)
    assert {"trainer", "config", "calibration", "paper_base_acc", "paper_hm"} <= set(rows[0])
    by = {(r["trainer"], r["calibration"], r["dataset"]): r for r in rows}
    tc = by[("CoOp", "tcpt", "dtd")]
    assert approx(tc["base_acc"], 81) and approx(tc["new_ece"], 8) and tc["n_seeds"] == "1"
    assert tc["base_acc_std"] == ""
    # published TCPT Table values: CoOp+TCPT DTD base acc 80.44; CoOp DTD base acc 76.27, new 52.98
    assert approx(tc["paper_base_acc"], 80.44)
    coop = by[("CoOp", "none", "dtd")]
    assert approx(coop["paper_base_acc"], 76.27) and approx(coop["paper_new_acc"], 52.98)
    assert approx(coop["paper_hm"], 2 * 76.27 * 52.98 / (76.27 + 52.98), 0.006)
    # our average covers 3 datasets: the paper's is taken over the same 3 (Cal, DTD, Euro)
    assert approx(by[("CoOp", "none", "average")]["paper_base_acc"], (97.98 + 76.27 + 90.24) / 3, 0.006)
    maple = by[("MaPLe", "none", "dtd")]
    assert approx(maple["hm"], 2 * 83 * 65 / 148) and approx(maple["paper_base_ece"], 4.18)
    # filters
    rc, out, _ = run_main(capsys, tree, "--format", "csv", "--trainer", "MaPLe")
    rows = rows_of(out)
    assert [r["dataset"] for r in rows] == ["dtd", "average"] and "trainer" not in rows[0]
    # markdown: paper columns beside ours, one table per group
    rc, out, _ = run_main(capsys, tree, "--compare-paper", "--calibration", "tcpt", "--no-std")
    assert "| Dataset | Base Acc | paper | New Acc | paper | HM | paper |" in out
    assert "| DTD | 81.00 | 80.44 | 62.00 |" in out
    assert "### CoOp (vit_b16_ep50_ctxv1), calibration: tcpt, 16 shots" in out


def test_wide_layout(tree, capsys):
    add_other_groups(tree)
    rc, out, _ = run_main(capsys, tree, "--layout", "wide", "--compare-paper", "--trainer", "CoOp")
    assert "| Method | Calibration | Metric | Cal | DTD | Euro | Avg |" in out
    assert "| CoOp (vit_b16_ep50_ctxv1) | none | Acc | 97.00 | 82.00 | 92.00 | 90.33 |" in out
    assert "|   paper |  |  | 97.98 | 76.27 | 90.24 | 88.16 |" in out
    assert "### Harmonic mean" in out


def test_path_fallback_and_unfinished(tmp_path, capsys):
    """No results.json: metadata from the path (calibrator suffix), metrics from log.txt."""
    root = str(tmp_path)
    for split in ("train_base", "test_new"):
        d = run_dir(root, split, "eurosat", 1, cfgdir="vit_b16_ep50_ctxv1_tcpt")
        os.makedirs(d)
        with open(os.path.join(d, "log.txt"), "w") as f:
            f.write(LOG)
    d = run_dir(root, "test_new", "eurosat", 2, cfgdir="vit_b16_ep50_ctxv1_tcpt")
    os.makedirs(d)
    with open(os.path.join(d, "log.txt"), "w") as f:
        f.write("epoch [3/50] ...\n")  # still running / crashed: no result block
    runs = pr.collect_runs(root)
    assert {(r["trainer"], r["config"], r["calibration"], r["shots"], r["side"]) for r in runs} == {
        ("CoOp", "vit_b16_ep50_ctxv1", "tcpt", 16, "base"), ("CoOp", "vit_b16_ep50_ctxv1", "tcpt", 16, "new")}
    rc, out, err = run_main(capsys, root, "--format", "csv")
    rows = rows_of(out)
    assert approx(rows[0]["base_acc"], 70) and approx(rows[0]["new_ece"], 14) and approx(rows[0]["hm"], 70)
    assert "eurosat new seed2: unfinished" in err and "eurosat base seed2: missing" in err


def test_corrupt_or_non_finite_results_are_listed_never_averaged(tmp_path, capsys):
    """Base seed 1 is fine (acc 80); seed 2's results.json is cut in half (a copy that did not finish);
    seed 3 says finished with a NaN accuracy. Only seed 1 enters the base mean."""
    root = str(tmp_path)
    for seed in (1, 2, 3):
        write_result(root, "test_new", "dtd", seed, 60, 5)
    write_result(root, "train_base", "dtd", 1, 80, 2)
    half = os.path.join(write_result(root, "train_base", "dtd", 2, 90, 3), "results.json")
    with open(half) as f:
        text = f.read()
    with open(half, "w") as f:
        f.write(text[:len(text) // 2])
    write_result(root, "train_base", "dtd", 3, float("nan"), 3)
    status = {(r["side"], r["seed"]): r["status"] for r in pr.collect_runs(root)}
    assert status == {("base", 1): "finished", ("base", 2): "unreadable", ("base", 3): "non-finite",
                      ("new", 1): "finished", ("new", 2): "finished", ("new", 3): "finished"}
    rc, out, err = run_main(capsys, root, "--format", "csv")
    row = rows_of(out)[0]
    assert approx(row["base_acc"], 80) and approx(row["new_acc"], 60) and row["n_base"] == "1"
    assert "dtd base seed2: unreadable" in err and "dtd base seed3: non-finite" in err
    assert f"{half}: Unterminated string" in err and "metrics accuracy are not finite" in err


def test_split_cfg_dir(tmp_path):
    os.makedirs(tmp_path / "configs" / "trainers" / "CoOp")
    os.makedirs(tmp_path / "configs" / "calibration")
    (tmp_path / "configs" / "trainers" / "CoOp" / "vit_b16_ep50_ctxv1.yaml").write_text("")
    (tmp_path / "configs" / "calibration" / "zs_norm.yaml").write_text("")
    r = str(tmp_path)
    assert pr.split_cfg_dir("vit_b16_ep50_ctxv1", "CoOp", r) == ("vit_b16_ep50_ctxv1", "none")
    assert pr.split_cfg_dir("vit_b16_ep50_ctxv1_my_calib", "CoOp", r) == ("vit_b16_ep50_ctxv1", "my_calib")
    assert pr.split_cfg_dir("vit_b16_ep50_ctxv1_my_calib", "CoOp", r) == ("vit_b16_ep50_ctxv1", "my_calib")
    assert pr.split_cfg_dir("other_cfg_zs_norm", "KgCoOp", r) == ("other_cfg", "zs_norm")
    assert pr.split_cfg_dir("vit_b16", "ZeroshotCLIP", r) == ("vit_b16", "none")
    assert pr.paper_names("ZeroshotCLIP", "none") == ("ZeroShot", "none")
    assert pr.paper_names("KgCoOp", "zs_norm") == ("KgCoOp", "ZS-Norm")
    assert pr.paper_names("CoCoOp", "none") is None


def test_no_runs(tmp_path, capsys):
    rc, _, err = run_main(capsys, str(tmp_path))
    assert rc == 1 and "base2new" in err


def test_plot(tree, tmp_path, capsys):
    plots = pytest.importorskip("cpt.calibration.plots")
    if not hasattr(plots, "save_summary_figure"):
        pytest.skip("calibration.plots.save_summary_figure not written yet")
    add_other_groups(tree)
    path = str(tmp_path / "summary.png")
    rc, _, _ = run_main(capsys, tree, "--plot", path)
    assert rc == 0 and os.path.getsize(path) > 1000
    groups, _, _ = pr.summarize(pr.collect_runs(tree))
    rows = pr.summary_rows(groups)
    assert {r["label"] for r in rows} == {"CoOp", "CoOp+tcpt", "MaPLe"}
    coop = [r for r in rows if r["label"] == "CoOp"][0]
    assert coop["base_acc"] == pytest.approx(271 / 3) and coop["new_ece"] == pytest.approx(7)


def test_paper_average_all_datasets(tmp_path, capsys):
    """With all 11 benchmarks the paper's own Avg column is shown (ZeroShot: 69.50 / 74.30)."""
    root = str(tmp_path)
    for stem, _, _ in pr.DATASETS:
        for split in ("train_base", "test_new"):
            write_result(root, split, stem, 1, 70.0, 3.0, trainer="ZeroshotCLIP", config="vit_b16")
    rc, out, err = run_main(capsys, root, "--format", "csv", "--compare-paper", "--no-std")
    rows = rows_of(out)
    assert len(rows) == 12 and rows[-1]["dataset"] == "average"
    assert approx(rows[-1]["paper_base_acc"], 69.50) and approx(rows[-1]["paper_new_acc"], 74.30)
    assert approx(rows[-1]["paper_hm"], 2 * 69.5 * 74.3 / (69.5 + 74.3))
    assert approx(rows[0]["paper_new_ece"], 2.09)  # ImageNet, zero-shot, new ECE
    assert "same" not in err  # no subset note
