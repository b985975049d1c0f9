#!/usr/bin/env bash
# Install ipcbus from the build tree into a fresh prefix, build examples/
# against that install with find_package(ipcbus CONFIG), and run them as
# two processes. Proves the installed package works. Usage: BUILD_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
work=$(mktemp -d)
trap 'kill "$lpid" 2>/dev/null || true; rm -rf "$work"; rm -f /dev/shm/ipcbus.example-$$' EXIT
lpid=
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$root/examples" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" -j2 >/dev/null
# The installed programs run as they are: they find the installed library.
for tool in ipcbus ipcbus-agent; do
  if ! out=$(env -u LD_LIBRARY_PATH "$work/prefix/bin/$tool" --version 2>&1); then
    echo "installed $tool does not run: $out" >&2
    exit 1
  fi
done
export LD_LIBRARY_PATH="$work/prefix/lib:${LD_LIBRARY_PATH:-}"
bus=example-$$
"$work/build/example_listener" "$bus" 5 > "$work/out.txt" &
lpid=$!
for _ in $(seq 100); do grep -q ready "$work/out.txt" 2>/dev/null && break; sleep 0.05; done
"$work/build/example_publisher" "$bus" 5
wait "$lpid"
lpid=
test "$(grep -c '^sensors/kitchen/temp ' "$work/out.txt")" -eq 5
pkg-config --exists --print-errors ipcbus 2>/dev/null || \
  PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" pkg-config --cflags --libs ipcbus >/dev/null
# The .pc of this install names this install, not the configured prefix.
pc_libdir=$(PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" pkg-config --variable=libdir ipcbus)
if [ "$(realpath "$pc_libdir")" != "$(realpath "$work/prefix/lib")" ]; then
  echo "installed ipcbus.pc names libdir $pc_libdir, not $work/prefix/lib" >&2
  exit 1
fi
echo "examples built against the installed package and exchanged 5 events"
