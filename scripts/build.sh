#!/usr/bin/env bash
# Configure and build ipcbus into build/ (or $IPCBUS_BUILD_DIR), warnings as errors.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${IPCBUS_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIPCBUS_WERROR=ON "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
