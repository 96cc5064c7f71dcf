#!/usr/bin/env bash
# CoOp, base-to-new: train on every dataset x seed (DATASETS, SEEDS).
# usage: bash base2new_train_coop_datasets.sh [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run coop train_datasets "$@"
