#!/usr/bin/env bash
# TaI-DPT, domain generalisation: train on DG_SOURCE (default coco2014, all 80 classes) and
# evaluate on its own test set (COCO-2014 val).
# usage: bash dg_train_taidpt.sh SEED [GPU]        bash dg_train_taidpt.sh   # every seed of SEEDS
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run taidpt dg_train "$@"
