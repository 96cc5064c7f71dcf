#!/usr/bin/env bash
# Tables of the KgCoOp runs under $OUTPUT (default <repo>/output): base, new, HM, ECE per dataset.
# usage: bash parse_all_results.sh [any scripts/parse_results.py option: --format csv, --compare-paper, ...]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run kgcoop parse "$@"
