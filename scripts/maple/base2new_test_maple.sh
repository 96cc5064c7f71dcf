#!/usr/bin/env bash
# MaPLe, base-to-new: evaluate on the new classes.
# usage: bash base2new_test_maple.sh                 # every dataset/seed with a trained model
#        bash base2new_test_maple.sh DATASET SEED [GPU]
#        bash base2new_test_maple.sh GPU              # all, on this GPU
# Environment: DATA (required), DATASETS, SEEDS, CFG, CALIB, SHOTS, OUTPUT, OPTS, PYTHON, GPU,
# DRY_RUN; see scripts/common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_init MaPLe vit_b16_c2_ep5_batch4_2ctx
cpt_test_cli "$@"
