#!/usr/bin/env bash
# ZeroshotCLIP, base-to-new: evaluate on the new classes.
# usage: bash base2new_test_zsclip.sh                 # every dataset/seed with a finished base run
#        bash base2new_test_zsclip.sh DATASET SEED [GPU]
#        bash base2new_test_zsclip.sh GPU              # all, on this GPU
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run zsclip test "$@"
