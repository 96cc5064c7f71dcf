#!/usr/bin/env bash
# MaPLe, base-to-new: evaluate the new classes of every dataset x seed (DATASETS, SEEDS).
# usage: bash base2new_test_maple_datasets.sh [GPU]
# Environment: DATA (required), DATASETS, SEEDS, CFG, CALIB, SHOTS, OUTPUT, OPTS, PYTHON, GPU,
# DRY_RUN; see scripts/common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_init MaPLe vit_b16_c2_ep5_batch4_2ctx
cpt_test_datasets "$@"
