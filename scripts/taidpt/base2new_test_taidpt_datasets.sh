#!/usr/bin/env bash
# TaI-DPT, multi-label base-to-new: evaluate the new classes of every dataset x seed.
# usage: bash base2new_test_taidpt_datasets.sh [GPU]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run taidpt test_datasets "$@"
