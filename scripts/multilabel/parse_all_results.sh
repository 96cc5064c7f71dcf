#!/usr/bin/env bash
# Multi-label tables of every run under $OUTPUT (default <repo>/output): mAP, CF1/OF1 and ECE on
# base and new classes (+ head/medium/tail ECE where defined), then the domain-generalisation table.
# usage: bash parse_all_results.sh [any scripts/parse_results.py option, e.g. --trainer CoOp]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cpt_run --multilabel all parse "$@"
