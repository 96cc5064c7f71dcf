#!/usr/bin/env bash
# Domain generalisation: train this folder's method on DG_SOURCE, all classes (cpt_run taidpt dg_train).
# usage: bash dg_train_taidpt.sh [SEED [GPU]]   (no SEED: every seed of SEEDS)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" && source "$here/../common.sh"
cpt_run "$(basename "$here")" dg_train "$@"  # the method is the folder's name
