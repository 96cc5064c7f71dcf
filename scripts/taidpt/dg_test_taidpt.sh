#!/usr/bin/env bash
# TaI-DPT, domain generalisation: evaluate the DG_SOURCE-trained prompts on DG_TARGETS (default
# coco2017 coco_lt: COCO-2017 val and the COCO-LT test set with its head/medium/tail groups).
# usage: bash dg_test_taidpt.sh TARGET SEED [GPU]   bash dg_test_taidpt.sh   # every target x seed
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run taidpt dg_test "$@"
