#!/usr/bin/env bash
# Multi-label tables of the TaI-DPT runs under $OUTPUT (default <repo>/output): mAP, CF1/OF1 and
# ECE on base and new classes (head/medium/tail ECE where the dataset defines the groups), and the
# domain-generalisation table when $OUTPUT/dg exists.
# usage: bash parse_all_results.sh [any scripts/parse_results.py option]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run taidpt parse "$@"
