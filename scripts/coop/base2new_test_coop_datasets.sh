#!/usr/bin/env bash
# CoOp, base-to-new: evaluate the new classes of every dataset x seed (DATASETS, SEEDS).
# usage: bash base2new_test_coop_datasets.sh [GPU]
# Environment: DATA (required), DATASETS, SEEDS, CFG, CALIB, SHOTS, OUTPUT, OPTS, PYTHON, GPU,
# DRY_RUN; see scripts/common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_init CoOp vit_b16_ep50_ctxv1
cpt_test_datasets "$@"
