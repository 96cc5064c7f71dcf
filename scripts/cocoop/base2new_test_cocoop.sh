#!/usr/bin/env bash
# CoCoOp, base-to-new: evaluate on the new classes.
# usage: bash base2new_test_cocoop.sh                 # every dataset/seed with a trained model
#        bash base2new_test_cocoop.sh DATASET SEED [GPU]
#        bash base2new_test_cocoop.sh GPU              # all, on this GPU
# Environment: DATA (required), DATASETS, SEEDS, CFG, CALIB, SHOTS, OUTPUT, OPTS, PYTHON, GPU,
# DRY_RUN; see scripts/common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_init CoCoOp vit_b16_c4_ep10_batch1_ctxv1
cpt_test_cli "$@"
