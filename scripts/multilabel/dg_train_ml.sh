#!/usr/bin/env bash
# Domain generalisation: train METHOD on DG_SOURCE (default coco2014), all classes.
# usage: METHOD=coop bash dg_train_ml.sh [SEED [GPU]]   (no SEED: every seed of SEEDS)
# METHOD: zsclip | coop | cocoop | kgcoop | taidpt (default: the catalog's
# default method, coop; each with its multi-label config).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run --multilabel "${METHOD:-}" dg_train "$@"
