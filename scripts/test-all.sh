#!/usr/bin/env bash
# Every test on a fresh Debian 12 machine: install what is missing, build
# with warnings as errors, run the whole ctest suite (unit, multi-process
# with real processes, the main job on real input, the installed package,
# benchmark smoke runs), then a short libFuzzer pass over each target.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
build=${IPCBUS_BUILD_DIR:-$root/build}
(cd "$build" && ctest --output-on-failure -j2 --timeout 600)
"$root/scripts/fuzz.sh" "${IPCBUS_FUZZ_SECONDS:-10}"
