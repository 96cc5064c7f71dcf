# Multi-label additions to scripts/common.sh (the CCR paper's half). Sourced, never run.
#
# Sourcing this file sources common.sh and changes the default DATASETS to the multi-label
# benchmarks (coco2014 voc2007 nuswide coco_lt voc_lt); the base-to-new functions of common.sh
# work unchanged (multi-label base/new: the first ceil(C/2) classes are base, training sees the base
# columns, base and new are scored on their own columns over the full test set).
#
# Domain generalisation (train on a source, evaluate the trained prompt on other datasets with the
# same classes):
#   cpt_dg_train_one SEED [GPU]          train on DG_SOURCE, all classes; evaluates DG_SOURCE's test
#   cpt_dg_test_one TARGET SEED [GPU]    --eval-only on TARGET with the DG_SOURCE model
#   cpt_dg_train_cli [SEED [GPU]]        no args: every seed of SEEDS
#   cpt_dg_test_cli [TARGET SEED [GPU]]  no args: every target of DG_TARGETS x every seed
# Environment: DG_SOURCE (default coco2014: train2014, its test set is COCO-2014 val) and
# DG_TARGETS (default "coco2017 coco_lt": COCO-2017 val and the COCO-LT test set, whose
# head/medium/tail groups the evaluator reports), plus everything of common.sh.
# Output layout (read by scripts/parse_results.py --dg):
#   $OUTPUT/dg/train/<source>/shots_<K>/<Trainer>/<cfgdir>/seed<S>
#   $OUTPUT/dg/test/<target>/shots_<K>/<Trainer>/<cfgdir>/seed<S>
# SHOTS=0 (or negative) trains on all training data (TaI-DPT on captions ignores it).

source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
CPT_DEFAULT_DATASETS="coco2014 voc2007 nuswide coco_lt voc_lt"

cpt_dg_run_dir() {  # train|test dataset seed
    echo "$OUTPUT/dg/$1/$2/shots_$SHOTS/$TRAINER/$CFGDIR/seed$3"
}

cpt_dg_train_one() {
    [ $# -ge 1 ] || cpt_die "usage: $(basename "$0") SEED [GPU]"
    cpt_require_data
    cpt_set_gpu "${2:-}"
    local src="${DG_SOURCE:-coco2014}"
    cpt_train_run "$(cpt_dg_run_dir train "$src" "$1")" "$src" "$1" all "[dg-train] $TRAINER $CFGDIR $src seed$1"
}

cpt_dg_test_one() {
    [ $# -ge 2 ] || cpt_die "usage: $(basename "$0") TARGET SEED [GPU]"
    cpt_require_data
    cpt_set_gpu "${3:-}"
    local src="${DG_SOURCE:-coco2014}"
    cpt_test_run "$(cpt_dg_run_dir test "$1" "$2")" "$(cpt_dg_run_dir train "$src" "$2")" "$1" "$2" all \
        "[dg-test] $TRAINER $CFGDIR $src -> $1 seed$2" "no trained $src model for seed$2 (run dg_train first)"
}

cpt_dg_train_cli() {
    if [ $# -ge 1 ]; then
        cpt_dg_train_one "$@"
        return
    fi
    local s failed=""
    for s in $SEEDS; do
        ( cpt_dg_train_one "$s" ) || failed="$failed seed$s"
    done
    [ -z "$failed" ] || { echo "error: failed runs:$failed" >&2; return 1; }
}

cpt_dg_test_cli() {
    if [ $# -ge 2 ]; then
        cpt_dg_test_one "$@"
        return
    fi
    local t s failed=""
    for t in ${DG_TARGETS:-coco2017 coco_lt}; do
        for s in $SEEDS; do
            ( cpt_dg_test_one "$t" "$s" "${1:-}" ) || failed="$failed $t/seed$s"
        done
    done
    [ -z "$failed" ] || { echo "error: failed runs:$failed" >&2; return 1; }
}

# cpt_ml_init: METHOD (zsclip | coop | cocoop | kgcoop | taidpt; default coop) -> cpt_init with the
# multi-label default config of that method (BCE for the CLIP prompt learners).
cpt_ml_init() {
    case "${METHOD:-coop}" in
        zsclip) cpt_init ZeroshotCLIP vit_b16 ;;
        coop) cpt_init CoOp vit_b16_bce_ep10 ;;
        cocoop) cpt_init CoCoOp vit_b16_bce_ep10 ;;
        kgcoop) cpt_init KgCoOp vit_b16_bce_ep10 ;;
        taidpt) cpt_init TaIDPT vit_b16 ;;
        *) cpt_die "METHOD must be zsclip, coop, cocoop, kgcoop or taidpt, got '${METHOD}'" ;;
    esac
}
