#!/usr/bin/env bash
# CoCoOp, base-to-new: train on every dataset x seed (DATASETS, SEEDS).
# usage: bash base2new_train_cocoop_datasets.sh [GPU]
# Environment: DATA (required), DATASETS, SEEDS, CFG, CALIB, SHOTS, OUTPUT, OPTS, PYTHON, GPU,
# DRY_RUN; see scripts/common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_init CoCoOp vit_b16_c4_ep10_batch1_ctxv1
cpt_train_all "$@"
