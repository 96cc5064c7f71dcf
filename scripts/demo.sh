#!/usr/bin/env bash
# The quick start: the base-to-new pipeline on the offline world (tiny CLIP + generated images),
# offline, on the CPU, in a few minutes. It runs the same bash drivers a GPU user runs on the real
# benchmarks (scripts/<method>/base2new_*.sh), then the parser:
#   1. ZeroshotCLIP        (world config, template "a photo of a {}.")
#   2. CoOp                (16 shots, base classes; tested on the new classes)
#   3. CoOp + TCPT         (the same, with the TCPT calibration preset)
# and prints the base/new/HM accuracy and ECE table; every run saves its reliability diagram
# (reliability_<split>.png) beside its results.json.
#
# Environment:
#   OUTPUT      output root (default: output/demo)
#   SEEDS       default "1"
#   DEMO_QUICK  1: 10 training epochs instead of the config's 50 (what CI runs)
#   PYTHON      interpreter (default: .venv/bin/python when present, else python)
# The world's images are generated once into the cache directory ($CPT_CACHE_DIR, default
# ~/.cache/calibrated-prompt-tuning) and reused. Numbers from the world say nothing about real CLIP; see the README.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
export PYTHON
export OUTPUT="${OUTPUT:-$ROOT/output/demo}"
export DATA="${DATA:-$OUTPUT/data}"   # the world needs no data folder; its splits live in the cache
export DATASETS=shapeworld
export SEEDS="${SEEDS:-1}"
mkdir -p "$DATA"
EPOCHS=50
if [ "${DEMO_QUICK:-0}" = 1 ]; then EPOCHS=10; fi
export OPTS="OPTIM.MAX_EPOCH $EPOCHS"
start=$(date +%s)

step() { echo; echo "=== $* ($(( $(date +%s) - start )) s)"; }

step "1/3 ZeroshotCLIP on the offline world (base and new)"
CFG=world bash scripts/zsclip/base2new_train_zsclip_datasets.sh >"$OUTPUT/zsclip.log" 2>&1 \
    || { tail -20 "$OUTPUT/zsclip.log"; exit 1; }
CFG=world bash scripts/zsclip/base2new_test_zsclip_datasets.sh >>"$OUTPUT/zsclip.log" 2>&1 \
    || { tail -20 "$OUTPUT/zsclip.log"; exit 1; }

for calib in none tcpt; do
    if [ "$calib" = none ]; then step "2/3 CoOp, $EPOCHS epochs"; else step "3/3 CoOp + TCPT, $EPOCHS epochs"; fi
    log="$OUTPUT/coop_$calib.log"
    CFG=world_ep50 CALIB=$calib bash scripts/coop/base2new_train_coop_datasets.sh >"$log" 2>&1 \
        || { tail -20 "$log"; exit 1; }
    CFG=world_ep50 CALIB=$calib bash scripts/coop/base2new_test_coop_datasets.sh >>"$log" 2>&1 \
        || { tail -20 "$log"; exit 1; }
done

step "results (percent; base from train_base, new from test_new)"
"$PYTHON" scripts/parse_results.py "$OUTPUT" --format md
echo
echo "Reliability diagrams:"
find "$OUTPUT/base2new" -name 'reliability*.png' | sort
echo "Logs: $OUTPUT/*.log; total $(( $(date +%s) - start )) s"
