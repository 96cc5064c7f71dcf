#!/usr/bin/env bash
# TaI-DPT, domain generalisation: evaluate the DG_SOURCE-trained prompts on DG_TARGETS (default
# coco2017 coco_lt: COCO-2017 val and the COCO-LT test set with its head/medium/tail groups).
# usage: bash dg_test_taidpt.sh TARGET SEED [GPU]   bash dg_test_taidpt.sh   # every target x seed
# Environment: DATA (required), DATASETS (default: the multi-label benchmarks), SEEDS, CFG, CALIB,
# SHOTS, OUTPUT, OPTS, PYTHON, GPU, DRY_RUN; see scripts/common.sh and scripts/multilabel/common_ml.sh.
# DG_SOURCE, DG_TARGETS: see scripts/multilabel/common_ml.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../multilabel/common_ml.sh"
cpt_init TaIDPT vit_b16
cpt_dg_test_cli "$@"
