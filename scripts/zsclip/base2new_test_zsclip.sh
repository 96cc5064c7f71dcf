#!/usr/bin/env bash
# ZeroshotCLIP, base-to-new: evaluate on the new classes.
# usage: bash base2new_test_zsclip.sh [DATASET SEED] [GPU]   (none: every finished base dataset/seed)
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run zsclip test "$@"
