# Shared logic of the base-to-new drivers in scripts/<method>/. Sourced, never run.
#
# A method script sources this file, calls `cpt_init <Trainer> <default cfg>` and then one of
#   cpt_train_one DATASET SEED [GPU]    cpt_train_all [GPU]
#   cpt_test_one  DATASET SEED [GPU]    cpt_test_datasets [GPU]
#   cpt_test_cli [DATASET SEED] [GPU]   cpt_parse [parse_results.py args]
#
# Environment (all optional except DATA):
#   DATA      dataset root passed as --root (required for training/testing)
#   DATASETS  dataset yaml stems (configs/datasets/<stem>.yaml), default: the 11 benchmarks
#             (the offline world is not in the default list: DATASETS=shapeworld CFG=...)
#   SEEDS     default "1 2 3"
#   CFG       method config stem (configs/trainers/<Trainer>/<CFG>.yaml) or a .yaml path
#   CALIB     calibration preset (configs/calibration/<CALIB>.yaml) or "none" (default)
#   SHOTS     default 16
#   OUTPUT    output root, default <repo>/output
#   OPTS      extra trailing "KEY VALUE" opts for train.py (appended to every command)
#   LOAD_EPOCH  checkpoint epoch for testing; default: OPTIM.MAX_EPOCH from OPTS or the config
#   PYTHON    interpreter, default "python"
#   GPU       GPU id (CUDA_VISIBLE_DEVICES); the optional GPU argument wins over it
#   DRY_RUN=1 print the commands instead of running them
#
# Output layout (docs/design.md section 7, calibrator in the path):
#   $OUTPUT/base2new/{train_base,test_new}/<dataset>/shots_<K>/<Trainer>/<cfgdir>/seed<S>
# with <cfgdir> = <cfg> when CALIB is none, else <cfg>_<CALIB>.
# A run whose results.json says "status": "finished" is skipped; any other existing run dir is
# re-run, and train.py resumes from its last checkpoint (Dassl's resume_model_if_exist).
#
# The Python mirror of these commands is scripts/sweep.py (build_train_cmd / build_test_cmd);
# tests/test_scripts.py checks that both produce the same argv.

CPT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CPT_DEFAULT_DATASETS="imagenet caltech101 oxford_pets stanford_cars oxford_flowers food101 fgvc_aircraft sun397 dtd eurosat ucf101"

cpt_die() {
    echo "error: $*" >&2
    exit 1
}

cpt_list_stems() {  # directory -> space separated yaml stems
    local f out=""
    for f in "$1"/*.yaml; do
        [ -e "$f" ] || continue
        f="$(basename "$f")"
        out="$out ${f%.yaml}"
    done
    echo "${out:- none}"
}

# cpt_init TRAINER DEFAULT_CFG
cpt_init() {
    TRAINER="$1"
    ROOT="$CPT_ROOT"
    PYTHON="${PYTHON:-python}"
    CPT_USER_DATASETS="${DATASETS:-}"
    CPT_USER_SEEDS="${SEEDS:-}"
    DATASETS="${DATASETS:-$CPT_DEFAULT_DATASETS}"
    SEEDS="${SEEDS:-1 2 3}"
    CFG="${CFG:-$2}"
    CALIB="${CALIB:-none}"
    SHOTS="${SHOTS:-16}"
    OUTPUT="${OUTPUT:-$ROOT/output}"
    OPTS="${OPTS:-}"
    case "$OUTPUT" in /*) ;; *) OUTPUT="$(pwd)/$OUTPUT" ;; esac

    # method config: a path to a yaml file, or a stem under configs/trainers/<Trainer>/
    # (ZeroshotCLIP also looks under CoOp/, where the upstream repos keep vit_b16.yaml)
    if [ -f "$CFG" ] && [ "${CFG%.yaml}" != "$CFG" ]; then
        CFG_FILE="$(cd "$(dirname "$CFG")" && pwd)/$(basename "$CFG")"
        CFG="$(basename "${CFG%.yaml}")"
    elif [ -f "$ROOT/configs/trainers/$TRAINER/$CFG.yaml" ]; then
        CFG_FILE="$ROOT/configs/trainers/$TRAINER/$CFG.yaml"
    elif [ "$TRAINER" = ZeroshotCLIP ] && [ -f "$ROOT/configs/trainers/CoOp/$CFG.yaml" ]; then
        CFG_FILE="$ROOT/configs/trainers/CoOp/$CFG.yaml"
    else
        cpt_die "method config '$CFG' not found: expected $ROOT/configs/trainers/$TRAINER/$CFG.yaml" \
            "(available:$(cpt_list_stems "$ROOT/configs/trainers/$TRAINER")); set CFG to a stem or a .yaml path"
    fi

    if [ "$CALIB" = none ]; then
        CALIB_FILE=""
        CFGDIR="$CFG"
    else
        CALIB_FILE="$ROOT/configs/calibration/$CALIB.yaml"
        [ -f "$CALIB_FILE" ] || cpt_die "calibration preset '$CALIB' not found: expected $CALIB_FILE" \
            "(available:$(cpt_list_stems "$ROOT/configs/calibration")); CALIB=none for no calibration"
        CFGDIR="${CFG}_${CALIB}"
    fi
}

cpt_require_data() {
    if [ -z "${DATA:-}" ]; then
        cpt_die "DATA is not set. Export the dataset root, e.g. 'export DATA=/path/to/datasets'" \
            "(the folder holding imagenet/, caltech-101/, oxford_pets/, ...; for the offline world" \
            "(DATASETS=shapeworld) any folder will do: the world is generated into the cache)."
    fi
}

cpt_set_gpu() {  # optional GPU id argument, else $GPU, else leave CUDA_VISIBLE_DEVICES alone
    local gpu="${1:-${GPU:-}}"
    if [ -n "$gpu" ]; then
        export CUDA_VISIBLE_DEVICES="$gpu"
    fi
}

cpt_run_dir() {  # split dataset seed
    echo "$OUTPUT/base2new/$1/$2/shots_$SHOTS/$TRAINER/$CFGDIR/seed$3"
}

cpt_is_finished() {  # run dir -> 0 when results.json says "status": "finished"
    [ -f "$1/results.json" ] && grep -Eq '"status"[[:space:]]*:[[:space:]]*"finished"' "$1/results.json"
}

cpt_dataset_file() {
    local f="$ROOT/configs/datasets/$1.yaml"
    [ -f "$f" ] || cpt_die "dataset config '$1' not found: expected $f (available:$(cpt_list_stems "$ROOT/configs/datasets"))"
    echo "$f"
}

cpt_load_epoch() {  # LOAD_EPOCH, else OPTIM.MAX_EPOCH in OPTS, else MAX_EPOCH in the method config
    if [ -n "${LOAD_EPOCH:-}" ]; then
        echo "$LOAD_EPOCH"
        return
    fi
    local ep="" prev="" w
    for w in $OPTS; do
        [ "$prev" = OPTIM.MAX_EPOCH ] && ep="$w"
        prev="$w"
    done
    if [ -z "$ep" ]; then
        ep="$(sed -n -E 's/^[[:space:]]*MAX_EPOCH[[:space:]]*:[[:space:]]*([0-9]+).*/\1/p' "$CFG_FILE" | head -n 1)"
    fi
    [ -n "$ep" ] || cpt_die "no MAX_EPOCH in $CFG_FILE (nor OPTIM.MAX_EPOCH in OPTS); set LOAD_EPOCH"
    echo "$ep"
}

cpt_exec() {  # run or print the command in CMD
    if [ "${DRY_RUN:-0}" = 1 ]; then
        printf '%q ' "${CMD[@]}"
        echo
        return 0
    fi
    "${CMD[@]}"
}

cpt_base_cmd() {  # dataset seed outdir -> CMD
    local dsfile
    dsfile="$(cpt_dataset_file "$1")" || exit 1
    CMD=("$PYTHON" "$ROOT/train.py" --root "$DATA" --seed "$2" --trainer "$TRAINER"
        --dataset-config-file "$dsfile" --config-file "$CFG_FILE")
    if [ -n "$CALIB_FILE" ]; then
        CMD+=(--calib-config-file "$CALIB_FILE")
    fi
    CMD+=(--output-dir "$3")
}

# cpt_train_run DIR DATASET SEED SUBSAMPLE LABEL: one training run into DIR (skipped when finished,
# resumed when unfinished; ZeroshotCLIP only evaluates). LABEL is the log line after "-> DIR".
cpt_train_run() {
    local dir="$1"
    if cpt_is_finished "$dir"; then
        echo "[skip] finished: $dir"
        return 0
    fi
    [ -d "$dir" ] && echo "[resume] $dir exists without a finished results.json; re-running"
    cpt_base_cmd "$2" "$3" "$dir"
    if [ "$TRAINER" = ZeroshotCLIP ]; then
        CMD+=(--eval-only)
    fi
    # shellcheck disable=SC2206
    CMD+=(DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES "$4" $OPTS)
    echo "$5 -> $dir"
    cpt_exec
}

# cpt_test_run DIR MODEL_DIR DATASET SEED SUBSAMPLE LABEL MISSING: evaluate the model of MODEL_DIR
# (load epoch from the config) into DIR; MISSING is the error when MODEL_DIR is not finished.
cpt_test_run() {
    local dir="$1" mdir="$2"
    if cpt_is_finished "$dir"; then
        echo "[skip] finished: $dir"
        return 0
    fi
    cpt_base_cmd "$3" "$4" "$dir"
    if [ "$TRAINER" != ZeroshotCLIP ]; then
        if ! cpt_is_finished "$mdir" && [ "${DRY_RUN:-0}" != 1 ]; then
            cpt_die "$7: $mdir has no finished results.json"
        fi
        local ep
        ep="$(cpt_load_epoch)" || exit 1
        CMD+=(--model-dir "$mdir" --load-epoch "$ep")
    fi
    # shellcheck disable=SC2206
    CMD+=(--eval-only DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES "$5" $OPTS)
    echo "$6 -> $dir"
    cpt_exec
}

# cpt_train_one DATASET SEED [GPU]: train on base classes (ZeroshotCLIP: evaluate base classes)
cpt_train_one() {
    [ $# -ge 2 ] || cpt_die "usage: $(basename "$0") DATASET SEED [GPU]"
    cpt_require_data
    cpt_set_gpu "${3:-}"
    cpt_train_run "$(cpt_run_dir train_base "$1" "$2")" "$1" "$2" base "[train] $TRAINER $CFGDIR $1 seed$2"
}

# cpt_test_one DATASET SEED [GPU]: evaluate the trained model on the new classes
cpt_test_one() {
    [ $# -ge 2 ] || cpt_die "usage: $(basename "$0") [DATASET SEED] [GPU]"
    cpt_require_data
    cpt_set_gpu "${3:-}"
    cpt_test_run "$(cpt_run_dir test_new "$1" "$2")" "$(cpt_run_dir train_base "$1" "$2")" "$1" "$2" new \
        "[test] $TRAINER $CFGDIR $1 seed$2" "no trained model for $1 seed$2 (run base2new_train first)"
}

cpt_in_list() {  # word list...
    local w="$1" x
    shift
    for x in "$@"; do
        [ "$x" = "$w" ] && return 0
    done
    return 1
}

# cpt_grid FUNC [GPU]: FUNC DATASET SEED GPU for every dataset x seed (DATASETS, SEEDS); keeps
# going after a failure and returns 1 when any run failed
cpt_grid() {
    cpt_require_data
    local d s failed=""
    for d in $DATASETS; do
        for s in $SEEDS; do
            ( "$1" "$d" "$s" "${2:-}" ) || failed="$failed $d/seed$s"
        done
    done
    if [ -n "$failed" ]; then
        echo "error: failed runs:$failed" >&2
        return 1
    fi
}

cpt_train_all() { cpt_grid cpt_train_one "${1:-}"; }   # [GPU]
cpt_test_datasets() { cpt_grid cpt_test_one "${1:-}"; }  # [GPU]

# cpt_test_all [GPU]: every dataset x seed that has a trained model (a finished train_base run)
# for this trainer/config/calibration/shots; DATASETS/SEEDS, when set, restrict the list.
cpt_test_all() {
    cpt_require_data
    local dir rest d s n=0 failed=""
    # shellcheck disable=SC2206
    local want_d=($CPT_USER_DATASETS) want_s=($CPT_USER_SEEDS)
    for dir in "$OUTPUT"/base2new/train_base/*/"shots_$SHOTS/$TRAINER/$CFGDIR"/seed*; do
        [ -d "$dir" ] || continue
        cpt_is_finished "$dir" || continue
        s="${dir##*/seed}"
        rest="${dir#"$OUTPUT"/base2new/train_base/}"
        d="${rest%%/*}"
        [ ${#want_d[@]} -eq 0 ] || cpt_in_list "$d" "${want_d[@]}" || continue
        [ ${#want_s[@]} -eq 0 ] || cpt_in_list "$s" "${want_s[@]}" || continue
        n=$((n + 1))
        ( cpt_test_one "$d" "$s" "${1:-}" ) || failed="$failed $d/seed$s"
    done
    if [ "$n" -eq 0 ]; then
        cpt_die "no trained model under $OUTPUT/base2new/train_base/*/shots_$SHOTS/$TRAINER/$CFGDIR/seed*" \
            "(a finished results.json); run base2new_train first"
    fi
    if [ -n "$failed" ]; then
        echo "error: failed runs:$failed" >&2
        return 1
    fi
}

# cpt_test_cli [DATASET SEED] [GPU]: no args or only GPU -> test all; DATASET SEED [GPU] -> one
cpt_test_cli() {
    case $# in
        0) cpt_test_all ;;
        1) cpt_test_all "$1" ;;
        2 | 3) cpt_test_one "$@" ;;
        *) cpt_die "usage: $(basename "$0") [DATASET SEED] [GPU]" ;;
    esac
}

# cpt_parse [parse_results.py args]: tables of this trainer (all its configs/calibrations)
cpt_parse() {
    local python="${PYTHON:-python}"
    "$python" "$CPT_ROOT/scripts/parse_results.py" "${OUTPUT:-$CPT_ROOT/output}" --trainer "$TRAINER" "$@"
}
