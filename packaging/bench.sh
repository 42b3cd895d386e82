#!/usr/bin/env bash
# Runs the benchmarks (tests/bench/bench_*.py) against the Release build: each measures mlctl
# and its baseline (numpy, PyTorch, nginx, a Python server) in the same run and prints ratios.
# Peers that are not installed are skipped with a message; `packaging/install-deps.sh
# --with-bench` installs them. Benchmarks are not tests: they never run in CI.
# Usage: packaging/bench.sh [NAME...]     e.g. packaging/bench.sh train infer
set -euo pipefail
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0; }
cd "$(dirname "$0")/.."

names=("$@")
if ((${#names[@]} == 0)); then
  for f in tests/bench/bench_*.py; do
    n=${f##*/bench_}
    names+=("${n%.py}")
  done
fi
for n in "${names[@]}"; do # every name checked before anything is built
  [[ -f tests/bench/bench_$n.py ]] || { echo "bench: no such benchmark: $n (tests/bench/bench_$n.py)" >&2; exit 2; }
done

cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target mlctl mlctl_bench_infer mlctl_bench_http_floor >/dev/null
export MLCTL_BIN=$PWD/build/release/mlctl

status=0
for n in "${names[@]}"; do
  printf '\n== bench %s\n' "$n"
  /usr/bin/python3 "tests/bench/bench_$n.py" || { echo "bench: $n failed" >&2; status=1; }
done
exit "$status"
