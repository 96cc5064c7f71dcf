#!/usr/bin/env bash
# KgCoOp, base-to-new: evaluate the new classes of every dataset x seed (DATASETS, SEEDS).
# usage: bash base2new_test_kgcoop_datasets.sh [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run kgcoop test_datasets "$@"
