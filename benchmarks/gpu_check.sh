#!/usr/bin/env bash
# The GPU check of the speed work: bench_train (short text path on vs off) and bench_eval (the
# feature-cache sweep) in fp16, bf16 and amp, with CUDA data loading (loader workers, pinned memory).
#
# usage: bash benchmarks/gpu_check.sh [--cpu] [--precs "fp16 bf16 amp"] [--log FILE]
#   --cpu    run on the CPU in a tiny setting (world-tiny CLIP, few classes, one repeat): checks that
#            everything starts and runs (CI); on the CPU the precision is always fp32.
#   --precs  the precisions to run (default: fp16 bf16 amp).
#   --log    also write the output to FILE (default: $OUT/gpu_check.log when $OUT is set).
# Environment: PYTHON (default: python3), BENCH_TRAIN_ARGS / BENCH_EVAL_ARGS (extra arguments).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
CPU=0
PRECS="fp16 bf16 amp"
LOG="${OUT:+$OUT/gpu_check.log}"
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) CPU=1 ;;
        --precs) PRECS="$2"; shift ;;
        --log) LOG="$2"; shift ;;
        *) echo "gpu_check.sh: unknown argument $1 (expected --cpu, --precs LIST, --log FILE)" >&2; exit 2 ;;
    esac
    shift
done
if [ -n "$LOG" ]; then
    mkdir -p "$(dirname "$LOG")"
    exec > >(tee -a "$LOG") 2>&1
fi

if [ "$CPU" = 1 ]; then
    TRAIN=(--device cpu --backbone world-tiny --size 32 --classes 5 --repeats 1 --batch-size 2 --threads 1)
    EVAL=(--device cpu --skip-vit-b16 --classes 5 --batches 1 --batch-size 4 --repeats 1 --sweep 2 --threads 1)
else
    if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "gpu_check.sh: no CUDA device visible; use --cpu for the CPU check" >&2
        exit 1
    fi
    "$PYTHON" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
    TRAIN=(--device cuda --classes 10 100 1000 --repeats 5 --batch-size 32 --per-image-batch-size 1 --workers 4
           --pin-memory)
    EVAL=(--device cuda --classes 100 --batches 20 --batch-size 100 --repeats 3 --sweep 5 --workers 4
          --pin-memory)
fi

for prec in $PRECS; do
    echo "=== bench_train, precision $prec ==="
    # shellcheck disable=SC2086
    "$PYTHON" "$HERE/bench_train.py" "${TRAIN[@]}" --prec "$prec" ${BENCH_TRAIN_ARGS:-}
    echo "=== bench_eval, precision $prec ==="
    # shellcheck disable=SC2086
    "$PYTHON" "$HERE/bench_eval.py" "${EVAL[@]}" --prec "$prec" ${BENCH_EVAL_ARGS:-} | grep -v '^\*\|^=>'
done
echo "gpu_check.sh: done"
