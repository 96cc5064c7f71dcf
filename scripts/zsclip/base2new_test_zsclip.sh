#!/usr/bin/env bash
# ZeroshotCLIP, base-to-new: evaluate on the new classes.
# usage: bash base2new_test_zsclip.sh                 # every dataset/seed with a finished base run
#        bash base2new_test_zsclip.sh DATASET SEED [GPU]
#        bash base2new_test_zsclip.sh GPU              # all, on this GPU
# Environment: DATA (required), DATASETS, SEEDS, CFG, CALIB, SHOTS, OUTPUT, OPTS, PYTHON, GPU,
# DRY_RUN; see scripts/common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_init ZeroshotCLIP vit_b16
cpt_test_cli "$@"
