#!/usr/bin/env bash
# The chaos test for longer: publishers and listeners of every overflow
# policy killed at random for SECONDS (default 60) while the agent cleans up,
# then checks that the survivors lost nothing and no chunk leaked. CI runs it
# for 3 s as part of ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${IPCBUS_BUILD_DIR:-$root/build}
[ -x "$build/tests/ipcbus_crash_tests" ] || "$root/scripts/build.sh"
IPCBUS_CHAOS_SECONDS=${1:-60} IPCBUS_LOG_LEVEL=error \
  "$build/tests/ipcbus_crash_tests" --gtest_filter='Chaos.*'
