#!/usr/bin/env bash
# KgCoOp, base-to-new: train on the base classes of one dataset.
# usage: bash base2new_train_kgcoop.sh DATASET SEED [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run kgcoop train "$@"
