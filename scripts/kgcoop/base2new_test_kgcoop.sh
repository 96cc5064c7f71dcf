#!/usr/bin/env bash
# KgCoOp, base-to-new: evaluate on the new classes.
# usage: bash base2new_test_kgcoop.sh                 # every dataset/seed with a trained model
#        bash base2new_test_kgcoop.sh DATASET SEED [GPU]
#        bash base2new_test_kgcoop.sh GPU              # all, on this GPU
# Environment: DATA (required), DATASETS, SEEDS, CFG, CALIB, SHOTS, OUTPUT, OPTS, PYTHON, GPU,
# DRY_RUN; see scripts/common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_init KgCoOp vit_b16_ep100_ctxv1
cpt_test_cli "$@"
