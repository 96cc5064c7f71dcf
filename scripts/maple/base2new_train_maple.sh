#!/usr/bin/env bash
# MaPLe, base-to-new: train on the base classes of one dataset.
# usage: bash base2new_train_maple.sh DATASET SEED [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run maple train "$@"
