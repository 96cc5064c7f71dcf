#!/usr/bin/env bash
# Base-to-new: train this folder's method on the base classes of one dataset (cpt_run cocoop train).
# usage: bash base2new_train_cocoop.sh DATASET SEED [GPU]
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" && source "$here/../common.sh"
cpt_run "$(basename "$here")" train "$@"  # the method is the folder's name
