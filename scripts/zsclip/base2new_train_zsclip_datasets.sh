#!/usr/bin/env bash
# ZeroshotCLIP, base-to-new: evaluate the base classes of every dataset x seed (DATASETS, SEEDS).
# usage: bash base2new_train_zsclip_datasets.sh [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run zsclip train_datasets "$@"
