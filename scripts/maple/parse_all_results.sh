#!/usr/bin/env bash
# Tables of this folder's method's runs under $OUTPUT (default <repo>/output; cpt_run maple parse).
# usage: bash parse_all_results.sh [any scripts/parse_results.py option: --format csv, --compare-paper, ...]
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" && source "$here/../common.sh"
cpt_run "$(basename "$here")" parse "$@"  # the method is the folder's name
