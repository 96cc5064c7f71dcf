#!/usr/bin/env bash
# Base-to-new: evaluate the new classes of every dataset x seed (cpt_run kgcoop test_datasets).
# usage: bash base2new_test_kgcoop_datasets.sh [GPU]
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" && source "$here/../common.sh"
cpt_run "$(basename "$here")" test_datasets "$@"  # the method is the folder's name
