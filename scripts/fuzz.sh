#!/usr/bin/env bash
# Build the libFuzzer targets with clang (AddressSanitizer + UBSan) and run
# each for a bounded time, seeded by its corpus in fuzz/corpus/<target>;
# inputs that once crashed, kept in fuzz/regressions/<target>, run first.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET=20]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-20}
build=${IPCBUS_FUZZ_BUILD_DIR:-$root/build-fuzz}
cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DIPCBUS_FUZZ=ON -DIPCBUS_SANITIZE=ON -DIPCBUS_BUILD_TESTS=OFF -DIPCBUS_BUILD_BENCH=OFF \
  -DIPCBUS_BUILD_TOOLS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_topic fuzz_trie fuzz_segment
for target in fuzz_topic fuzz_trie fuzz_segment; do
  work=$(mktemp -d)
  if compgen -G "$root/fuzz/regressions/$target/*" >/dev/null; then
    "$build/fuzz/$target" "$root"/fuzz/regressions/$target/* 2>"$work/regress.log" || {
      cat "$work/regress.log"; exit 1; }
  fi
  echo "== $target: ${seconds}s"
  "$build/fuzz/$target" -max_total_time="$seconds" -artifact_prefix="$work/" \
    -print_final_stats=1 "$work" "$root/fuzz/corpus/$target" 2>"$work/log" || {
      tail -50 "$work/log"; echo "crash input kept in $work" >&2; exit 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "$work/log" | tail -3
  rm -rf "$work"
done
