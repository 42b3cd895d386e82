#!/usr/bin/env bash
# Installs every Debian 12 package that building, testing and the quickstart of mlctl need.
# Idempotent: does nothing (and needs no root) when everything is already present.
# Usage: packaging/install-deps.sh [--with-bench]   (--with-bench adds the benchmark peers)
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache clang libclang-rt-14-dev
  libcli11-dev libcurl4-openssl-dev nlohmann-json3-dev libarchive-dev libzip-dev
  libboost-filesystem-dev doctest-dev libeigen3-dev libsqlite3-dev libyaml-cpp-dev
  libcpp-httplib-dev libsimdjson-dev libssl-dev libprotobuf-dev protobuf-compiler
  libpng-dev libjpeg62-turbo-dev zlib1g-dev libisal-dev jq
  python3 python3-numpy python3-onnx python3-torch python3-yaml dataset-fashion-mnist man-db dpkg-dev
  prometheus # promtool checks the /metrics exposition
)
case "${1:-}" in
  --with-bench) packages+=(wrk nginx-light libopenblas0-pthread) ;;
  -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
  "") ;;
  *) echo "install-deps: unknown argument: $1 (usage: packaging/install-deps.sh [--with-bench])" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm may come from elsewhere (nodesource, nvm); only install Debian's when there is none.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# ---- npm packages of the manifest validator (tests/manifests) ---------------------------
# `npm ci` into tests/manifests/node_modules when it is missing or older than the lockfile
# (npm writes node_modules/.package-lock.json on every install). Nothing happens where the
# validator is absent, e.g. in the Docker build stage, which copies this script alone.
# A failed `npm ci` fails CI (CI=true); elsewhere it is a warning, and the manifest test
# skips its schema part.
install_manifest_validator() {
  local dir lock installed
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/manifests"
  lock=$dir/package-lock.json
  installed=$dir/node_modules/.package-lock.json
  [[ -f $lock ]] || return 0
  if [[ -f $installed && ! $installed -ot $lock ]]; then
    return 0
  fi
  echo "install-deps: npm ci --prefix tests/manifests" >&2
  if ! npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null; then
    if [[ -n ${CI:-} ]]; then
      echo "install-deps: npm ci failed in tests/manifests" >&2
      return 1
    fi
    echo "install-deps: warning: npm ci failed in tests/manifests; manifests will not be schema-checked" >&2
  fi
}
install_manifest_validator
