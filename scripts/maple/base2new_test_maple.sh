#!/usr/bin/env bash
# MaPLe, base-to-new: evaluate on the new classes.
# usage: bash base2new_test_maple.sh                 # every dataset/seed with a trained model
#        bash base2new_test_maple.sh DATASET SEED [GPU]
#        bash base2new_test_maple.sh GPU              # all, on this GPU
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run maple test "$@"
