#!/usr/bin/env bash
# ZeroshotCLIP, base-to-new: evaluate zero-shot CLIP on the base classes of one dataset (no training).
# usage: bash base2new_train_zsclip.sh DATASET SEED [GPU]
# Environment: DATA (required), DATASETS, SEEDS, CFG, CALIB, SHOTS, OUTPUT, OPTS, PYTHON, GPU,
# DRY_RUN; see scripts/common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_init ZeroshotCLIP vit_b16
cpt_train_one "$@"
