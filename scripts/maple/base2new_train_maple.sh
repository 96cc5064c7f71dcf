#!/usr/bin/env bash
# MaPLe, base-to-new: train on the base classes of one dataset.
# usage: bash base2new_train_maple.sh DATASET SEED [GPU]
# Environment: DATA (required), DATASETS, SEEDS, CFG, CALIB, SHOTS, OUTPUT, OPTS, PYTHON, GPU,
# DRY_RUN; see scripts/common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_init MaPLe vit_b16_c2_ep5_batch4_2ctx
cpt_train_one "$@"
