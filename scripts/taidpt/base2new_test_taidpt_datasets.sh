#!/usr/bin/env bash
# TaI-DPT, multi-label base-to-new: evaluate the new classes of every dataset x seed.
# usage: bash base2new_test_taidpt_datasets.sh [GPU]
# Environment: DATA (required), DATASETS (default: the multi-label benchmarks), SEEDS, CFG, CALIB,
# SHOTS, OUTPUT, OPTS, PYTHON, GPU, DRY_RUN; see scripts/common.sh and scripts/multilabel/common_ml.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../multilabel/common_ml.sh"
cpt_init TaIDPT vit_b16
cpt_test_datasets "$@"
