#!/usr/bin/env bash
# CoOp, base-to-new: evaluate on the new classes.
# usage: bash base2new_test_coop.sh                 # every dataset/seed with a trained model
#        bash base2new_test_coop.sh DATASET SEED [GPU]
#        bash base2new_test_coop.sh GPU              # all, on this GPU
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run coop test "$@"
