#!/usr/bin/env bash
# Configure and build ipcbus into build/ (or $IPCBUS_BUILD_DIR), warnings as errors.
# $IPCBUS_BUILD_TARGETS (space-separated) builds only those targets; default: all.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${IPCBUS_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIPCBUS_WERROR=ON "$@" >/dev/null
targets=()
for t in ${IPCBUS_BUILD_TARGETS:-}; do
  targets+=(--target "$t")
done
cmake --build "$build" -j"$(nproc)" "${targets[@]}"
