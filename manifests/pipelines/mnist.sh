#!/usr/bin/env bash
# The MNIST pipeline, the seven steps of the original tutorial's second version, with step
# caching (a step whose inputs and parameters match a recorded run says `cached`):
#   fetch-mnist -> train -> catalog upload -> apply staging -> test staging (the gate)
#   -> apply production -> remove staging
# A failed gate (mlctl test exit 3) removes the staging application, leaves production
# untouched and exits 3. Every step prints a header and its wall time; the run ends with a
# summary table, also written as JSON to $RUN_DIR/run.json. The Argo version of the same flow
# is manifests/argo/mnist-pipeline.yaml.
#
# Parameters (environment, with defaults): MLCTL_SERVER, DATA_SOURCE (auto), DATA_DIR,
# MODELS_DIR, MODEL_NAME (mnist), APP_NAME (mnist-app), LEARNING_RATE (0.01), LEARNING_STEPS
# (5000), BATCH_SIZE (256), ACCEPTABLE_ACCURACY (0.90), TEST_SAMPLES (0 = all), WORK_DIR
# (.mlctl), RUN_DIR, MLCTL (the binary), MLCTL_CACHE_DIR, MLCTL_NO_CACHE=1 (force every step).
#
#   MLCTL_SERVER=http://127.0.0.1:9090 manifests/pipelines/mnist.sh
set -euo pipefail
case "${1:-}" in
  -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
  "") ;;
  *) echo "mnist.sh: unknown argument: $1 (it takes none: its parameters are environment variables, see --help)" >&2; exit 2 ;;
esac

MLCTL=${MLCTL:-mlctl}
mlctl=$MLCTL
WORK_DIR=${WORK_DIR:-.mlctl}
export MLCTL_SERVER=${MLCTL_SERVER:-http://127.0.0.1:9090}
export MLCTL_CACHE_DIR=${MLCTL_CACHE_DIR:-$WORK_DIR/cache}
DATA_SOURCE=${DATA_SOURCE:-auto}
DATA_DIR=${DATA_DIR:-${MNIST_DATA_DIR:-$WORK_DIR/data/mnist}}
MODELS_DIR=${MODELS_DIR:-${MNIST_MODELS_DIR:-$WORK_DIR/models}}
MODEL_NAME=${MODEL_NAME:-mnist}
APP_NAME=${APP_NAME:-mnist-app}
LEARNING_RATE=${LEARNING_RATE:-0.01}
LEARNING_STEPS=${LEARNING_STEPS:-5000}
BATCH_SIZE=${BATCH_SIZE:-256}
ACCEPTABLE_ACCURACY=${ACCEPTABLE_ACCURACY:-0.90}
TEST_SAMPLES=${TEST_SAMPLES:-0}
RUN_DIR=${RUN_DIR:-$WORK_DIR/runs/mnist}
MODEL_DIR=$MODELS_DIR/$MODEL_NAME
STAGING=$APP_NAME-staging
# train reads these from the environment too; the flags below are explicit.
unset MNIST_DATA_DIR MNIST_MODELS_DIR
mkdir -p "$RUN_DIR"
steps_file=$RUN_DIR/steps.tsv
: >"$steps_file"

now() { date +%s.%N; }
has_command() { local bin=$MLCTL; "$bin" "$@" --help >/dev/null 2>&1; }
json() { # FILE JQ-EXPR: a field of a JSON document
  jq -r "$2" "$1"
}
# step N NAME OUTFILE -- COMMAND...: header, run (stdout to OUTFILE), wall time, cached or not.
step() {
  local n=$1 name=$2 out=$3
  shift 4
  printf '\n== [%s/7] %s\n' "$n" "$name" >&2
  local start rc=0
  start=$(now)
  "$@" >"$out" 2>"$out.stderr" || rc=$?
  cat "$out.stderr" >&2
  local seconds cached=false
  seconds=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
  grep -q ': cached (' "$out.stderr" && cached=true
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$seconds" "$cached" >>"$steps_file"
  printf '   %s %s in %s s\n' "$name" "$( ((rc == 0)) && { $cached && echo cached || echo done; } || echo "FAILED (exit $rc)")" "$seconds" >&2
  return "$rc"
}
skip() { # N NAME WHY
  printf '\n== [%s/7] %s\n   skipped: %s\n' "$1" "$2" "$3" >&2
  printf '%s\tskipped\t0\tfalse\n' "$2" >>"$steps_file"
}

gate=skipped
result=ok
staging_applied=0
remove_staging() {
  if ((staging_applied)); then
    "$mlctl" delete application "$STAGING" --ignore-not-found >/dev/null 2>&1 || true
    staging_applied=0
  fi
}
trap remove_staging EXIT

# run.json: the summary fields, numbers where they are numbers, and one entry per step.
run_json_program='def num: (tonumber? // .); {result: $result, gate: $gate, dataset_digest: $digest, model: {name: $model, version: ($version | num), sha256: $sha}, test_accuracy: ($accuracy | num), latency_p50_ms: ($p50 | num), latency_p99_ms: ($p99 | num), health: $health, application: $app, steps: [$steps | split("\n")[] | select(length > 0) | split("\t") | {name: .[0], exit: (.[1] | num), seconds: (.[2] | num), cached: (.[3] == "true")}]}'
summary() {
  local version sha test_json=$RUN_DIR/test.json accuracy p50 p99 health
  version=$(cat "$RUN_DIR/model_version.txt" 2>/dev/null || echo -)
  sha=$(json "$RUN_DIR/upload.json" '.version.sha256 // "-"' 2>/dev/null || echo -)
  if [[ -s $test_json ]]; then
    # Latencies to the microsecond: jq 1.6 prints 0.067954 as 0.06795399999999999.
    accuracy=$(json "$test_json" '.accuracy'); p50=$(json "$test_json" '.latency_p50_ms * 1000 | round / 1000')
    p99=$(json "$test_json" '.latency_p99_ms * 1000 | round / 1000')
  else
    accuracy="$(json "$RUN_DIR/train.json" '.metrics.test_accuracy' 2>/dev/null || echo -) (training)"
    p50=-; p99=-
  fi
  health=-
  if [[ $result == ok ]] && has_command describe application; then
    health=$("$mlctl" -o json describe application "$APP_NAME" 2>/dev/null |
      jq -r '[.. | objects | select(has("health")) | .health | if type == "object" then (.status // .state // empty) else . end | strings] | unique | join(",")' 2>/dev/null || echo -)
    [[ -n $health ]] || health=-
  fi
  local digest
  digest=$(json "$RUN_DIR/dataset.json" '.digest' 2>/dev/null || echo -)
  printf '\n== summary\n' >&2
  printf '%-16s %s\n' result "$result" gate "$gate" "dataset digest" "$digest" \
    model "$MODEL_NAME:$version" sha256 "$sha" "test accuracy" "$accuracy" \
    "latency p50" "$p50 ms" "latency p99" "$p99 ms" health "$health" application "$APP_NAME"
  printf '\n%-20s %-8s %8s %s\n' STEP EXIT SECONDS CACHED
  awk -F'\t' '{ printf "%-20s %-8s %8s %s\n", $1, $2, $3, $4 }' "$steps_file"
  jq -n --arg result "$result" --arg gate "$gate" --arg digest "$digest" \
    --arg model "$MODEL_NAME" --arg version "$version" --arg sha "$sha" --arg app "$APP_NAME" \
    --arg accuracy "$accuracy" --arg p50 "$p50" --arg p99 "$p99" --arg health "$health" \
    --rawfile steps "$steps_file" "$run_json_program" \
    >"$RUN_DIR/run.json"
  echo "run.json: $RUN_DIR/run.json" >&2
}

step 1 fetch-mnist "$RUN_DIR/dataset.json" -- \
  "$mlctl" -o json fetch-mnist --source "$DATA_SOURCE" --out "$DATA_DIR"
step 2 train "$RUN_DIR/train.json" -- \
  "$mlctl" -o json train --data "$DATA_DIR" --out "$MODEL_DIR" --name "$MODEL_NAME" \
  --learning-rate "$LEARNING_RATE" --steps "$LEARNING_STEPS" --batch-size "$BATCH_SIZE"
step 3 "catalog upload" "$RUN_DIR/upload.json" -- \
  "$mlctl" -o json catalog upload "$MODEL_DIR" --name "$MODEL_NAME" \
  --version-file "$RUN_DIR/model_version.txt"
version=$(cat "$RUN_DIR/model_version.txt")

if ! has_command apply application; then
  skip 4 "apply staging" "this mlctl has no 'apply application'"
  result=registered
  summary
  exit 0
fi
staging_applied=1
step 4 "apply staging" "$RUN_DIR/staging.txt" -- \
  "$mlctl" apply application "$STAGING" --model "$MODEL_NAME:$version"

rc=0
step 5 "test staging" "$RUN_DIR/test.json" -- \
  "$mlctl" -o json test --app "$STAGING" --data "$DATA_DIR/test.npz" \
  --samples "$TEST_SAMPLES" --min-accuracy "$ACCEPTABLE_ACCURACY" || rc=$?
if ((rc != 0)); then
  gate="failed (exit $rc)"
  result="gate failed: production untouched"
  remove_staging
  summary
  exit "$rc"
fi
gate=passed

step 6 "apply production" "$RUN_DIR/production.txt" -- \
  "$mlctl" apply application "$APP_NAME" --model "$MODEL_NAME:$version"
step 7 "remove staging" "$RUN_DIR/remove-staging.txt" -- \
  "$mlctl" delete application "$STAGING" --ignore-not-found
staging_applied=0
summary
