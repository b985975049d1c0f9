#!/usr/bin/env bash
# clang-tidy 14 with the repository's .clang-tidy over the project's own
# sources: libipcbus/src, agent, tools, mainjob (and, through the header
# filter, their headers and libipcbus/include). Exits non-zero on any finding.
#
# Not tests/, bench/, fuzz/ or examples/: the gtest, RapidCheck and Google
# Benchmark macros expand to code that trips bugprone-* and the analyzer in
# every test, and their TUs (gtest, gmock, rapidcheck headers) would double
# the run time; that code is exercised by running it instead.
#
# Configures its own build tree for compile_commands.json only (a Debug
# configuration, so that assert() is visible to the analyzer) and builds
# nothing: the project generates no headers.
# Usage: scripts/lint.sh [build dir, default build-lint or $IPCBUS_LINT_BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${IPCBUS_LINT_BUILD_DIR:-$root/build-lint}}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  -DIPCBUS_BUILD_TESTS=OFF -DIPCBUS_BUILD_BENCH=OFF -DIPCBUS_FUZZ=OFF -DIPCBUS_SANITIZE=OFF \
  -DIPCBUS_BUILD_TOOLS=ON >/dev/null

# Sources of the compile database under these directories (the regex is
# matched against absolute paths).
sources="^$root/(libipcbus/src|agent|tools|mainjob)/"
# Drop clang-tidy's per-file chatter and colours; keep the findings.
quiet() {
  sed -u -E -e 's/\x1b\[[0-9;]*m//g' \
    -e '/^[0-9]+ (warnings?|errors?)( and [0-9]+ errors?)? generated\.$/d' \
    -e '/^Suppressed [0-9]+ warnings/d' -e '/^Use -header-filter=/d'
}

jobs=$(nproc)
if command -v run-clang-tidy-14 >/dev/null; then
  run-clang-tidy-14 -clang-tidy-binary clang-tidy-14 -p "$build" -j "$jobs" -quiet "$sources" \
    2>&1 | quiet
else
  python3 -c 'import json, sys, re
seen = set()
for e in json.load(open(sys.argv[1])):
    f = e["file"]
    if re.search(sys.argv[2], f) and f not in seen:
        seen.add(f)
        print(f)' "$build/compile_commands.json" "$sources" |
    xargs -r -P "$jobs" -n 1 clang-tidy-14 -p "$build" --quiet 2>&1 | quiet
fi
echo "clang-tidy: no findings"
