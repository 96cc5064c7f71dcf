#!/usr/bin/env bash
# CoOp, base-to-new: train on the base classes of one dataset.
# usage: bash base2new_train_coop.sh DATASET SEED [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run coop train "$@"
