#!/usr/bin/env bash
# Domain generalisation: evaluate METHOD's DG_SOURCE prompts on DG_TARGETS (coco2017 coco_lt).
# usage: METHOD=coop bash dg_test_ml.sh [TARGET SEED [GPU]]   (no args: every target x seed)
# METHOD: zsclip | coop | cocoop | kgcoop | taidpt (default coop; the BCE configs vit_b16_bce_ep10,
# TaI-DPT vit_b16). Environment: DATA (required), DATASETS (default: coco2014 voc2007 nuswide
# coco_lt voc_lt), SEEDS, CFG, CALIB (e.g. ccr), SHOTS, OUTPUT, OPTS, PYTHON, GPU, DRY_RUN,
# DG_SOURCE, DG_TARGETS; see scripts/common.sh and scripts/multilabel/common_ml.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common_ml.sh"
cpt_ml_init
cpt_dg_test_cli "$@"
