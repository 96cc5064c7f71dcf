#!/usr/bin/env bash
# TaI-DPT, multi-label base-to-new: train on the base classes of one dataset (with the default
# config vit_b16: on the COCO captions, DATASET.TRAIN_SOURCE captions).
# usage: bash base2new_train_taidpt.sh DATASET SEED [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run taidpt train "$@"
