#!/usr/bin/env bash
# CoCoOp, base-to-new: evaluate on the new classes.
# usage: bash base2new_test_cocoop.sh [DATASET SEED] [GPU]   (no DATASET SEED: every trained dataset/seed)
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run cocoop test "$@"
