#!/usr/bin/env bash
# Domain generalisation: evaluate METHOD's DG_SOURCE prompts on DG_TARGETS (coco2017 coco_lt).
# usage: METHOD=coop bash dg_test_ml.sh [TARGET SEED [GPU]]   (no args: every target x seed)
# METHOD: zsclip | coop | cocoop | kgcoop | taidpt (default: the catalog's
# default method, coop; each with its multi-label config).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run --multilabel "${METHOD:-}" dg_test "$@"
