#!/usr/bin/env bash
# TaI-DPT, multi-label base-to-new: evaluate on the new classes.
# usage: bash base2new_test_taidpt.sh                 # every dataset/seed with a trained model
#        bash base2new_test_taidpt.sh DATASET SEED [GPU]
#        bash base2new_test_taidpt.sh GPU              # all, on this GPU
# Environment: DATA (required), DATASETS (default: the multi-label benchmarks), SEEDS, CFG, CALIB,
# SHOTS, OUTPUT, OPTS, PYTHON, GPU, DRY_RUN; see scripts/common.sh and scripts/multilabel/common_ml.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../multilabel/common_ml.sh"
cpt_init TaIDPT vit_b16
cpt_test_cli "$@"
