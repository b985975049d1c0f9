#!/usr/bin/env bash
# Build and run the tests under sanitizers, each job in a build dir of its own
# (build-asan, build-tsan; or $IPCBUS_SANITIZE_BUILD_PREFIX-asan, ...):
#
#   asan  AddressSanitizer + UndefinedBehaviorSanitizer, leaks checked, no
#         recovery: the unit tests, the heap-counting test (tests/alloc), the
#         multi-process tests with their peer, the CLI and the agent they
#         exec, and the main job (ctest labels unit and multiproc). The
#         heap-counting test and topic_test.cpp replace operator new with one
#         that calls malloc: ASan still checks those blocks (it intercepts
#         malloc) and their counts hold, only its new/delete mismatch checks
#         are lost in those two binaries. Not run:
#         - label bench: not built; micro-benchmark figures under ASan say
#           nothing, and their smoke runs only prove they start.
#         - label package: installs and builds examples/ against the install
#           tree, a packaging check with no memory access of its own.
#   tsan  ThreadSanitizer: only the unit tests labelled concurrency (threads
#         on one bus in one process), each run up to 3 times. The multi-process
#         tests are not run: TSan sees neither the other processes' accesses
#         to the shared segment nor their futex wakes.
#
# A job fails when a test fails or when any process left a sanitizer report:
# the reports go to files (log_path), so that a peer's or the CLI's report
# counts even where its test only expects a failure exit; they are printed.
# Each job ends with a line "<job> ctest: N passed, M failed, K reports".
#
# Usage: scripts/sanitize.sh [asan|tsan|all]   (default: all)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}
prefix=${IPCBUS_SANITIZE_BUILD_PREFIX:-$root/build}
jobs=$(nproc)

case "$what" in
  asan | tsan) selected=("$what") ;;
  all) selected=(asan tsan) ;;
  *)
    echo "usage: $0 [asan|tsan|all]" >&2
    exit 2
    ;;
esac

# run_job NAME: configure, build, test; prints the job's summary line last.
run_job() {
  local name=$1 build="$prefix-$1" reports summary total failed nreports cxx
  local -a cmake_flags targets ctest_args
  local -x ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
  reports=$(mktemp -d)
  case "$name" in
    asan)
      # clang++: one runtime for ASan and UBSan, so that UBSan too aborts and
      # writes to log_path (GCC's separate libubsan prints to stderr and exits
      # 1, which a test expecting a failing child takes for that failure); and
      # it compiles these files in less than half GCC's time.
      cxx=clang++
      cmake_flags=(-DIPCBUS_SANITIZE=ON)
      # ipcbus_multiproc_tests depends on its peer, the CLI and the agent.
      targets=(ipcbus_unit_tests ipcbus_alloc_test ipcbus_multiproc_tests ipcbus_crash_tests
        ipcbus_property_test ipcbus-replay)
      ctest_args=(-L 'unit|multiproc|property')
      ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$reports/asan"
      UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
      ;;
    tsan)
      # g++: clang 14's shared TSan runtime crashes at start, and its static
      # one clashes with the operator new that topic_test.cpp replaces.
      cxx=g++
      cmake_flags=(-DIPCBUS_TSAN=ON)
      targets=(ipcbus_unit_tests)
      # A race shows only in the interleavings that happen: a few more runs.
      ctest_args=(-L concurrency --repeat until-fail:3)
      TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$reports/tsan"
      ;;
  esac

  local start=$SECONDS
  echo "== $name: configure and build in $build"
  # -O1: the speed the sanitizers' documentation recommends, without -O2's
  # compile time.
  if ! cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DIPCBUS_WERROR=ON -DIPCBUS_BUILD_BENCH=OFF "${cmake_flags[@]}" >"$reports/configure.log" 2>&1 ||
    ! cmake --build "$build" -j"$jobs" --target "${targets[@]}" >"$reports/build.log" 2>&1; then
    tail -n 60 "$reports/configure.log" "$reports/build.log" 2>/dev/null
    rm -rf "$reports"
    echo "$name ctest: build failed"
    return 1
  fi
  local built=$SECONDS
  echo "== $name: ctest ${ctest_args[*]}"
  (cd "$build" && ctest --output-on-failure -j"$jobs" --timeout 600 "${ctest_args[@]}") |
    tee "$reports/ctest.log" || true
  local done=$SECONDS

  nreports=0
  for f in "$reports"/asan.* "$reports"/ubsan.* "$reports"/tsan.*; do
    [ -e "$f" ] || continue
    nreports=$((nreports + 1))
    echo "== $name: sanitizer report $(basename "$f")"
    cat "$f"
  done
  summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' \
    "$reports/ctest.log" | tail -n 1 || true)
  rm -rf "$reports"
  echo "== $name: build $((built - start)) s, tests $((done - built)) s"
  if [ -z "$summary" ]; then
    echo "$name ctest: no summary, ctest did not finish; $nreports reports"
    return 1
  fi
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
  failed=$(sed -E 's/.*passed, ([0-9]+) tests failed.*/\1/' <<<"$summary")
  echo "$name ctest: $((total - failed)) passed, $failed failed, $nreports reports"
  [ "$failed" -eq 0 ] && [ "$nreports" -eq 0 ]
}

status=0
for job in "${selected[@]}"; do
  run_job "$job" || status=1
done
exit "$status"
