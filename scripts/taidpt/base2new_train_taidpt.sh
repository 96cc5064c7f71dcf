#!/usr/bin/env bash
# TaI-DPT, multi-label base-to-new: train on the base classes of one dataset (with the default
# config vit_b16: on the COCO captions, DATASET.TRAIN_SOURCE captions).
# usage: bash base2new_train_taidpt.sh DATASET SEED [GPU]
# Environment: DATA (required), DATASETS (default: the multi-label benchmarks), SEEDS, CFG, CALIB,
# SHOTS, OUTPUT, OPTS, PYTHON, GPU, DRY_RUN; see scripts/common.sh and scripts/multilabel/common_ml.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../multilabel/common_ml.sh"
cpt_init TaIDPT vit_b16
cpt_train_one "$@"
