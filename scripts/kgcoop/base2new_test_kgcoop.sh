#!/usr/bin/env bash
# Base-to-new: evaluate this folder's method on the new classes (cpt_run kgcoop test).
# usage: bash base2new_test_kgcoop.sh [DATASET SEED] [GPU]   (no DATASET SEED: every trained dataset/seed)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" && source "$here/../common.sh"
cpt_run "$(basename "$here")" test "$@"  # the method is the folder's name
