# Shared by the drivers in scripts/<method>/ and scripts/multilabel/. Sourced, never run.
#
# A driver calls `cpt_run [--multilabel] METHOD ACTION "$@"`, which runs scripts/drive.py (its
# docstring lists the actions). Methods, dataset lists, the run-directory layout and the finished
# rule are cli/catalog.py's (`python -m cpt.cli.catalog` prints the method table), as for scripts/sweep.py.
#
# Environment: DATA (the dataset root, required), DATASETS, SEEDS, CFG, CALIB, SHOTS, OUTPUT, OPTS,
# LOAD_EPOCH, PYTHON, GPU, DRY_RUN=1, DG_SOURCE / DG_TARGETS and (scripts/multilabel/) METHOD: their
# defaults and meaning are the table "Settings (environment variables)" of the README.
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
