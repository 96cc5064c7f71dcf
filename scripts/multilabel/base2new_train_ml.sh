#!/usr/bin/env bash
# Multi-label base-to-new: train METHOD on the base classes of one dataset.
# usage: METHOD=coop CALIB=ccr bash base2new_train_ml.sh DATASET SEED [GPU]
# METHOD: zsclip | coop | cocoop | kgcoop | taidpt (default: the catalog's
# default method, coop; each with its multi-label config).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run --multilabel "${METHOD:-}" train "$@"
