#!/usr/bin/env bash
# Rerun the whole performance comparison and rewrite its report:
#   1. build ipcbus-bench and the micro benchmarks (into $IPCBUS_BUILD_DIR, default build/);
#   2. wait for a quiet machine (1-minute load average below $IPCBUS_BENCH_MAX_LOAD,
#      default 1.0, for at most $IPCBUS_BENCH_WAIT_S seconds, default 900);
#   3. run the micro benchmarks with 5 repetitions (medians kept) and the full
#      multi-process comparison;
#   4. write BENCHMARKS.md from the two JSON files and the plots into docs/bench/.
# The raw JSON of the run is kept next to the plots (docs/bench/*.json).
#
#   scripts/bench.sh              the full run (about 10 minutes on 2 cores)
#   scripts/bench.sh --quick      the smoke subset, report written to $IPCBUS_BENCH_OUT
#                                 (default: a temporary directory), BENCHMARKS.md untouched
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${IPCBUS_BUILD_DIR:-$root/build}
max_load=${IPCBUS_BENCH_MAX_LOAD:-1.0}
wait_s=${IPCBUS_BENCH_WAIT_S:-900}
quick=0
if [[ "${1:-}" == "--quick" ]]; then
  quick=1
fi

echo "== build ($build)"
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target ipcbus-bench ipcbus_micro_bench >/dev/null
bench="$build/bench/ipcbus-bench"
micro="$build/bench/ipcbus_micro_bench"

if (( quick )); then
  out=${IPCBUS_BENCH_OUT:-$(mktemp -d /tmp/ipcbus-bench-report-XXXXXX)}
  mkdir -p "$out"
  "$bench" --quick --json "$out/ipcbus-bench.json" --plots "$out"
  "$bench" --report "$out/ipcbus-bench.json" > "$out/BENCHMARKS.md"
  echo "== quick report in $out"
  exit 0
fi

load1() { cut -d' ' -f1 /proc/loadavg; }
waited=0
while awk -v l="$(load1)" -v m="$max_load" 'BEGIN { exit !(l > m) }'; do
  if (( waited >= wait_s )); then
    echo "== load average still $(load1) after ${waited}s; measuring anyway (noted in the report)"
    break
  fi
  echo "== load average $(load1) > $max_load: waiting (${waited}s so far)"
  sleep 60
  waited=$((waited + 60))
done
echo "== load average $(load1): $(uptime)"

docs="$root/docs/bench"
mkdir -p "$docs"
tmp=$(mktemp -d /tmp/ipcbus-bench-run-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

echo "== micro benchmarks (5 repetitions, medians)"
"$micro" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_out="$tmp/micro.json" --benchmark_out_format=json

echo "== multi-process comparison"
status=0
"$bench" --json "$tmp/ipcbus-bench.json" --plots "$docs" || status=$?

cp "$tmp/ipcbus-bench.json" "$docs/ipcbus-bench.json"
cp "$tmp/micro.json" "$docs/micro.json"
notes=()
if [[ -f "$docs/NOTES.md" ]]; then
  notes=(--notes "$docs/NOTES.md")  # the hand-written analysis of the latest run
fi
"$bench" --report "$docs/ipcbus-bench.json" --micro "$docs/micro.json" "${notes[@]}" \
  > "$root/BENCHMARKS.md"
echo "== wrote BENCHMARKS.md and $docs/*.png (ipcbus-bench exit status $status)"
exit "$status"
