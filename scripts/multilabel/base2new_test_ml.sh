#!/usr/bin/env bash
# Multi-label base-to-new: evaluate METHOD's trained prompts on the new classes.
# usage: METHOD=coop bash base2new_test_ml.sh [DATASET SEED] [GPU]   (no DATASET SEED: all trained)
# METHOD: zsclip | coop | cocoop | kgcoop | taidpt (default: the catalog's
# default method, coop; each with its multi-label config).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run --multilabel "${METHOD:-}" test "$@"
