#!/usr/bin/env bash
# TaI-DPT, multi-label base-to-new: train on every dataset x seed (DATASETS, SEEDS).
# usage: bash base2new_train_taidpt_datasets.sh [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run taidpt train_datasets "$@"
