#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test once: the unit tests under ASan+UBSan
# (the fuzz targets replay their corpus there), then the end-to-end tests against the Release
# binary (the unit tests are not built a second time: that was a fifth of the CI time). Exits
# non-zero on any failure.
# By default the IDX, npz and picture (PNG, JPEG) readers, with predict --fit's fitting, are also
# fuzzed first (clang + libFuzzer, 20 s each, side by side; their build compiles eleven files),
# when clang++ can link libFuzzer.
# Usage: packaging/check.sh [--fast|--fuzz|--asan-e2e]
#   --fast      the Release build only, unit and end-to-end tests
#   --fuzz      every coverage-guided fuzzer (onnx too: the fuzz preset builds mlctl_core), first
#   --asan-e2e  only the end-to-end tests, against an ASan+UBSan build of mlctl (not in CI: its
#               files take 17-18 min two at a time on 2 cores; it found a use-after-free the
#               unit tests did not reach)
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
fuzz=0
asan_e2e=0
case "${1:-}" in
  --fast) fast=1 ;;
  --fuzz) fuzz=1 ;;
  --asan-e2e) asan_e2e=1 ;;
  -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
  "") ;;
  *) echo "check: unknown argument: $1 (usage: packaging/check.sh [--fast|--fuzz|--asan-e2e])" >&2; exit 2 ;;
esac
jobs=$(nproc)
summary=()
passed=0
failed=0

packaging/install-deps.sh

run_suite() { # preset [ctest-regex target...]: only those targets and tests when given
  local preset=$1 log filter=() targets=()
  if (($# > 1)); then
    filter=(-R "$2")
    targets=(--target "${@:3}")
  fi
  log=$(mktemp)
  echo "== check: $preset: configure and build" >&2
  # Each step checks its own status: `set -e` does not apply inside a function called from `||`.
  if ! cmake --preset "$preset" >/dev/null ||
    ! cmake --build --preset "$preset" -j"$jobs" "${targets[@]}"; then
    echo "check: $preset: configure or build failed" >&2
    summary+=("$preset: build failed")
    failed=$((failed + 1))
    return 1
  fi
  echo "== check: $preset: ctest" >&2
  local rc=0
  ctest --preset "$preset" -j"$jobs" "${filter[@]}" 2>&1 | tee "$log" || rc=$?
  local line
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -1 || true)
  rm -f "$log"
  if [[ -z "$line" ]]; then
    echo "check: $preset: ctest printed no summary" >&2
    summary+=("$preset: ctest printed no summary")
    failed=$((failed + 1))
    return 1
  fi
  local total bad
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  bad=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
  passed=$((passed + total - bad))
  failed=$((failed + bad))
  summary+=("$preset: $line")
  return "$rc"
}

# True when clang++ links a libFuzzer target (Debian 12: clang and libclang-rt-14-dev).
have_libfuzzer() {
  local dir rc=0
  dir=$(mktemp -d)
  printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' \
    >"$dir/probe.cpp"
  clang++ -fsanitize=fuzzer "$dir/probe.cpp" -o "$dir/probe" >/dev/null 2>&1 || rc=1
  rm -rf "$dir"
  return "$rc"
}

status=0
if ((asan_e2e == 1)); then
  run_suite asan-e2e '^e2e: ' mlctl mlctl_docs || status=1
elif ((fast == 1)); then
  run_suite release || status=1
else
  if ((fuzz == 1)); then
    run_suite fuzz || status=1
  elif have_libfuzzer; then
    run_suite fuzz '^fuzz: (idx|npz|picture)$' fuzz_idx fuzz_npz fuzz_picture || status=1
  else
    echo "check: clang++ cannot link libFuzzer; the IDX, npz and picture fuzzers are skipped" >&2
    summary+=("fuzz: skipped (clang++ cannot link libFuzzer)")
  fi
  run_suite asan || status=1
  # The benchmarks' own binaries are built too (warnings are errors), though they run only on demand.
  run_suite release '^e2e: ' mlctl mlctl_docs mlctl_bench_infer mlctl_bench_http_floor || status=1
fi

echo
printf '%s\n' "${summary[@]}"
echo "check: $passed passed, $failed failed"
exit "$status"
