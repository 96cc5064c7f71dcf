#!/usr/bin/env bash
# Multi-label base-to-new: train METHOD on every dataset x seed (DATASETS, SEEDS).
# usage: METHOD=coop CALIB=ccr bash base2new_train_ml_datasets.sh [GPU]
# METHOD: zsclip | coop | cocoop | kgcoop | taidpt (default: the catalog's
# default method, coop; each with its multi-label config).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run --multilabel "${METHOD:-}" train_datasets "$@"
