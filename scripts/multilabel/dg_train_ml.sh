#!/usr/bin/env bash
# Domain generalisation: train METHOD on DG_SOURCE (default coco2014), all classes.
# usage: METHOD=coop bash dg_train_ml.sh [SEED [GPU]]   (no SEED: every seed of SEEDS)
# METHOD: zsclip | coop | cocoop | kgcoop | taidpt (default coop; the BCE configs vit_b16_bce_ep10,
# TaI-DPT vit_b16). Environment: DATA (required), DATASETS (default: coco2014 voc2007 nuswide
# coco_lt voc_lt), SEEDS, CFG, CALIB (e.g. ccr), SHOTS, OUTPUT, OPTS, PYTHON, GPU, DRY_RUN,
# DG_SOURCE, DG_TARGETS; see scripts/common.sh and scripts/multilabel/common_ml.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common_ml.sh"
cpt_ml_init
cpt_dg_train_cli "$@"
