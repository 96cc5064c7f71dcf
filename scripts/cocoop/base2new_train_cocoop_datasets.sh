#!/usr/bin/env bash
# CoCoOp, base-to-new: train on every dataset x seed (DATASETS, SEEDS).
# usage: bash base2new_train_cocoop_datasets.sh [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run cocoop train_datasets "$@"
