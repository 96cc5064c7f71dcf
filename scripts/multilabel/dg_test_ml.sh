#!/usr/bin/env bash
# Domain generalisation: evaluate METHOD's DG_SOURCE prompts on DG_TARGETS (coco2017 coco_lt).
# usage: METHOD=coop bash dg_test_ml.sh [TARGET SEED [GPU]]   (no args: every target x seed)
# METHOD: zsclip | coop | cocoop | kgcoop | taidpt (default coop, with its multi-label config).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run --multilabel "${METHOD:-coop}" dg_test "$@"
