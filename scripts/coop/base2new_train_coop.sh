#!/usr/bin/env bash
# Base-to-new: train this folder's method on the base classes of one dataset (cpt_run coop train).
# usage: bash base2new_train_coop.sh DATASET SEED [GPU]
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" && source "$here/../common.sh"
cpt_run "$(basename "$here")" train "$@"  # the method is the folder's name
