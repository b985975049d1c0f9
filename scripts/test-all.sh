#!/usr/bin/env bash
# Every test on a fresh Debian 12 machine: install what is missing, build
# with warnings as errors, and run the whole ctest suite (unit, multi-process
# with real processes, the main job on real input, benchmark smoke runs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
build=${IPCBUS_BUILD_DIR:-$root/build}
cd "$build"
ctest --output-on-failure -j2 --timeout 600
