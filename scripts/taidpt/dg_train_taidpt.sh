#!/usr/bin/env bash
# TaI-DPT, domain generalisation: train on DG_SOURCE (default coco2014, all 80 classes) and
# evaluate on its own test set (COCO-2014 val).
# usage: bash dg_train_taidpt.sh SEED [GPU]        bash dg_train_taidpt.sh   # every seed of SEEDS
# Environment: DATA (required), DATASETS (default: the multi-label benchmarks), SEEDS, CFG, CALIB,
# SHOTS, OUTPUT, OPTS, PYTHON, GPU, DRY_RUN; see scripts/common.sh and scripts/multilabel/common_ml.sh.
# DG_SOURCE, DG_TARGETS: see scripts/multilabel/common_ml.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../multilabel/common_ml.sh"
cpt_init TaIDPT vit_b16
cpt_dg_train_cli "$@"
