#!/usr/bin/env bash
# ZeroshotCLIP, base-to-new: evaluate zero-shot CLIP on the base classes of one dataset (no training).
# usage: bash base2new_train_zsclip.sh DATASET SEED [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run zsclip train "$@"
