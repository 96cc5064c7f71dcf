#!/usr/bin/env bash
# KgCoOp, base-to-new: train on the base classes of one dataset.
# usage: bash base2new_train_kgcoop.sh DATASET SEED [GPU]
# Environment: DATA (required), DATASETS, SEEDS, CFG, CALIB, SHOTS, OUTPUT, OPTS, PYTHON, GPU,
# DRY_RUN; see scripts/common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_init KgCoOp vit_b16_ep100_ctxv1
cpt_train_one "$@"
