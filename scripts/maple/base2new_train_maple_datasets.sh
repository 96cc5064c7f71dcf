#!/usr/bin/env bash
# MaPLe, base-to-new: train on every dataset x seed (DATASETS, SEEDS).
# usage: bash base2new_train_maple_datasets.sh [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run maple train_datasets "$@"
