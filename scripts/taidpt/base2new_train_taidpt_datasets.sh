#!/usr/bin/env bash
# Base-to-new: train this folder's method on every dataset x seed (DATASETS, SEEDS; cpt_run taidpt train_datasets).
# usage: bash base2new_train_taidpt_datasets.sh [GPU]
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" && source "$here/../common.sh"
cpt_run "$(basename "$here")" train_datasets "$@"  # the method is the folder's name
