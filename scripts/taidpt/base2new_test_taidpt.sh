#!/usr/bin/env bash
# TaI-DPT, multi-label base-to-new: evaluate on the new classes.
# usage: bash base2new_test_taidpt.sh                 # every dataset/seed with a trained model
#        bash base2new_test_taidpt.sh DATASET SEED [GPU]
#        bash base2new_test_taidpt.sh GPU              # all, on this GPU
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run taidpt test "$@"
