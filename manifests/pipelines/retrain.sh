#!/usr/bin/env bash
# The maintenance loop (manifests/argo/retrain-cron.yaml runs the same flow monthly):
#   subsample labelled production traffic -> train on it merged with the original dataset
#   -> catalog upload -> mlctl rollout canary (gated) -> promoted or rolled back
# Exit 0 when the canary was promoted, 3 when it was rolled back (the application is back on
# its previous revision), anything else on failure. Steps are cached like mnist.sh's.
#
# Parameters (environment, with defaults): MLCTL_SERVER, APP_NAME (mnist-app), MODEL_NAME
# (mnist), DATA_DIR (the original dataset), RETRAIN_DIR, MODELS_DIR, SUBSAMPLE_SIZE (1000),
# LEARNING_RATE (0.01), LEARNING_STEPS (5000), BATCH_SIZE (256), CANARY_WEIGHT (10),
# CANARY_GATES (space-separated: accuracy>=0.95 error_rate<=0.01 p99_ms<=50
# reconstruction<=threshold), CANARY_MIN_REQUESTS (500), CANARY_MIN_LABELLED (100),
# CANARY_CONFIDENCE (0.95: a canary as good as the primary is rolled back by chance 5% of the
# time; 0.999 makes that 0.1%, at the price of missing smaller regressions), CANARY_TIMEOUT
# (10m), WORK_DIR, MLCTL.
# The canary is judged on live traffic: the application must be receiving requests (and, for
# accuracy, their labels through `mlctl feedback`) while this runs.
set -euo pipefail
case "${1:-}" in
  -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
  "") ;;
  *) echo "retrain.sh: unknown argument: $1 (it takes none: its parameters are environment variables, see --help)" >&2; exit 2 ;;
esac

MLCTL=${MLCTL:-mlctl}
mlctl=$MLCTL
WORK_DIR=${WORK_DIR:-.mlctl}
export MLCTL_SERVER=${MLCTL_SERVER:-http://127.0.0.1:9090}
export MLCTL_CACHE_DIR=${MLCTL_CACHE_DIR:-$WORK_DIR/cache}
APP_NAME=${APP_NAME:-mnist-app}
MODEL_NAME=${MODEL_NAME:-mnist}
DATA_DIR=${DATA_DIR:-${MNIST_DATA_DIR:-$WORK_DIR/data/mnist}}
RETRAIN_DIR=${RETRAIN_DIR:-$WORK_DIR/data/retrain}
MODELS_DIR=${MODELS_DIR:-${MNIST_MODELS_DIR:-$WORK_DIR/models}}
SUBSAMPLE_SIZE=${SUBSAMPLE_SIZE:-1000}
LEARNING_RATE=${LEARNING_RATE:-0.01}
LEARNING_STEPS=${LEARNING_STEPS:-5000}
BATCH_SIZE=${BATCH_SIZE:-256}
CANARY_WEIGHT=${CANARY_WEIGHT:-10}
CANARY_GATES=${CANARY_GATES:-accuracy>=0.95 error_rate<=0.01 p99_ms<=50 reconstruction<=threshold}
CANARY_MIN_REQUESTS=${CANARY_MIN_REQUESTS:-500}
CANARY_MIN_LABELLED=${CANARY_MIN_LABELLED:-100}
CANARY_CONFIDENCE=${CANARY_CONFIDENCE:-0.95}
CANARY_TIMEOUT=${CANARY_TIMEOUT:-10m}
RUN_DIR=${RUN_DIR:-$WORK_DIR/runs/retrain}
MODEL_DIR=$MODELS_DIR/$MODEL_NAME-retrained
unset MNIST_DATA_DIR MNIST_MODELS_DIR
mkdir -p "$RUN_DIR"

now() { date +%s.%N; }
step() { # N NAME -- COMMAND...
  local n=$1 name=$2 start rc=0
  shift 3
  printf '\n== [%s/4] %s\n' "$n" "$name" >&2
  start=$(now)
  "$@" || rc=$?
  printf '   %s: exit %s in %s s\n' "$name" "$rc" \
    "$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')" >&2
  return "$rc"
}

step 1 subsample -- \
  "$mlctl" subsample --app "$APP_NAME" -n "$SUBSAMPLE_SIZE" --out "$RETRAIN_DIR"
step 2 train -- \
  "$mlctl" -o json train --data "$RETRAIN_DIR" --merge "$DATA_DIR" --out "$MODEL_DIR" \
  --name "$MODEL_NAME" --learning-rate "$LEARNING_RATE" --steps "$LEARNING_STEPS" \
  --batch-size "$BATCH_SIZE" >"$RUN_DIR/train.json"
step 3 "catalog upload" -- \
  "$mlctl" -o json catalog upload "$MODEL_DIR" --name "$MODEL_NAME" \
  --version-file "$RUN_DIR/model_version.txt" >"$RUN_DIR/upload.json"
version=$(cat "$RUN_DIR/model_version.txt")

serving=$("$mlctl" -o json describe application "$APP_NAME" |
  jq -r '.stages[0].variants[] | select(.role == "primary") | .model')
if [ "$serving" = "$MODEL_NAME:$version" ]; then
  printf '\n== [4/4] rollout canary\n   skipped: %s already serves %s\n' "$serving" "$APP_NAME" >&2
  exit 0
fi
read -r -a gates <<<"$CANARY_GATES"
gate_args=()
for gate in "${gates[@]}"; do gate_args+=(--gate "$gate"); done
rc=0
step 4 "rollout canary" -- \
  "$mlctl" rollout canary "$APP_NAME" --model "$MODEL_NAME:$version" --weight "$CANARY_WEIGHT" \
  "${gate_args[@]}" --min-requests "$CANARY_MIN_REQUESTS" --min-labelled "$CANARY_MIN_LABELLED" \
  --confidence "$CANARY_CONFIDENCE" --timeout "$CANARY_TIMEOUT" --wait || rc=$?
case $rc in
  0) echo "retrain: $MODEL_NAME:$version promoted on $APP_NAME" >&2 ;;
  3) echo "retrain: $MODEL_NAME:$version rolled back; $APP_NAME is on its previous revision" >&2 ;;
  *) echo "retrain: rollout canary failed (exit $rc)" >&2 ;;
esac
exit "$rc"
