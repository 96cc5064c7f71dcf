#!/usr/bin/env bash
# CoCoOp, base-to-new: evaluate the new classes of every dataset x seed (DATASETS, SEEDS).
# usage: bash base2new_test_cocoop_datasets.sh [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run cocoop test_datasets "$@"
