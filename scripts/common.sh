# Shared by the drivers in scripts/<method>/ and scripts/multilabel/. Sourced, never run.
#
# A driver calls `cpt_run [--multilabel] METHOD ACTION "$@"`, which runs scripts/drive.py (its
# docstring lists the actions). Methods, dataset lists, the run-directory layout and the finished
# rule are cpt/catalog.py's (`python -m cpt.catalog` prints the method table), as for scripts/sweep.py.
#
# Environment (all optional except DATA):
#   DATA      dataset root passed as --root (required for training/testing)
#   DATASETS  dataset yaml stems (configs/datasets/<stem>.yaml), default: the 11 benchmarks
#             (multi-label scripts: coco2014 voc2007 nuswide coco_lt voc_lt; the offline world is in
#             neither list: DATASETS=shapeworld CFG=...)
#   SEEDS     default "1 2 3"
#   CFG       method config stem (configs/trainers/<Trainer>/<CFG>.yaml) or a .yaml path
#   CALIB     calibration preset (configs/calibration/<CALIB>.yaml) or "none" (default)
#   SHOTS     default 16 (multi-label: 0 or negative trains on all training data)
#   OUTPUT    output root, default <repo>/output
#   OPTS      extra trailing "KEY VALUE" opts for train.py (appended to every command)
#   LOAD_EPOCH  checkpoint epoch for testing; default: OPTIM.MAX_EPOCH from OPTS or the config
#   PYTHON    interpreter, default "python"
#   GPU       GPU id (CUDA_VISIBLE_DEVICES); the optional GPU argument wins over it
#   DRY_RUN=1 print the commands instead of running them
#   DG_SOURCE, DG_TARGETS  domain generalisation: the training source (default coco2014: train2014,
#             its test set is COCO-2014 val) and the targets (default "coco2017 coco_lt": COCO-2017
#             val and the COCO-LT test set, whose head/medium/tail groups the evaluator reports)
#   METHOD    scripts/multilabel/ only: zsclip | coop | cocoop | kgcoop | taidpt (default coop)
#
# Output layout: $OUTPUT/{base2new/{train_base,test_new},dg/{train,test}}/<dataset>/shots_<K>/<Trainer>/
# <cfg>[_<CALIB>]/seed<S>. A run whose results.json says "status": "finished" is skipped; any other
# is re-run, and train.py resumes from its last checkpoint.

CPT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

cpt_run() {
    local py="${PYTHON:-python}"
    command -v "$py" >/dev/null 2>&1 || py=python3
    exec "$py" "$CPT_ROOT/scripts/drive.py" --prog "$(basename "$0")" "$@"
}
