#!/usr/bin/env bash
# Domain generalisation: evaluate the DG_SOURCE model on DG_TARGETS (cpt_run taidpt dg_test).
# usage: bash dg_test_taidpt.sh [TARGET SEED [GPU]]   (no args: every target x seed)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" && source "$here/../common.sh"
cpt_run "$(basename "$here")" dg_test "$@"  # the method is the folder's name
