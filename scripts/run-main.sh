#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install what is missing, build,
# then replay /var/log/dpkg.log (or the file given as $1) through the bus
# across separate publisher and listener processes, and compare what every
# listener received with what the file says it should.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
# Only what the main job runs (the replay, the CLI and the agent to look at it
# afterwards); scripts/test-all.sh builds everything.
IPCBUS_BUILD_TARGETS="ipcbus-replay ipcbus-cli ipcbus-agent" "$root/scripts/build.sh"
build=${IPCBUS_BUILD_DIR:-$root/build}
if [ $# -gt 0 ]; then
  exec "$build/mainjob/ipcbus-replay" --input "$1"
fi
exec "$build/mainjob/ipcbus-replay"
