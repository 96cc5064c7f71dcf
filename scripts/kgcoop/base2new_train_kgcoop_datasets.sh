#!/usr/bin/env bash
# KgCoOp, base-to-new: train on every dataset x seed (DATASETS, SEEDS).
# usage: bash base2new_train_kgcoop_datasets.sh [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run kgcoop train_datasets "$@"
