#!/usr/bin/env bash
# Every test on a fresh Debian 12 machine: install what is missing, build
# with warnings as errors, run the whole ctest suite (unit, multi-process
# with real processes, the main job on real input, the installed package,
# benchmark smoke runs), clang-tidy over the project's sources
# (scripts/lint.sh), a short libFuzzer pass over each target, then the
# tests under sanitizers (scripts/sanitize.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
build=${IPCBUS_BUILD_DIR:-$root/build}
log=$(mktemp)
san_log=$(mktemp)
trap 'rm -f "$log" "$san_log"' EXIT
(cd "$build" && ctest --output-on-failure -j2 --timeout 600) | tee "$log"
"$root/scripts/lint.sh"
"$root/scripts/fuzz.sh" "${IPCBUS_FUZZ_SECONDS:-10}"
# The tests again under AddressSanitizer + UBSan and ThreadSanitizer
# (scripts/sanitize.sh says which); both jobs run even if one fails, and
# their summary lines are repeated below, before the last one.
san_status=0
"$root/scripts/sanitize.sh" all | tee "$san_log" || san_status=$?
grep -E '^(asan|tsan) ctest: ' "$san_log" || true
# ctest's summary again, last, so that it closes the run's output.
summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1)
total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
failed=$(sed -E 's/.*passed, ([0-9]+) tests failed.*/\1/' <<<"$summary")
echo "ctest: $((total - failed)) passed, $failed failed"
exit "$san_status"
