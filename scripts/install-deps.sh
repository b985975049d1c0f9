#!/usr/bin/env bash
# Install the Debian 12 packages ipcbus builds with, if any is missing.
# Run as root (CI and fresh machines are); does nothing when all are there.
set -euo pipefail

packages=(
  build-essential cmake ccache pkg-config
  libboost-dev          # Boost.Interprocess: the segment and its mapping
  libspdlog-dev libfmt-dev  # logging on slow paths
  libcli11-dev          # argument parsing for the CLI, the agent and the replay job
  nlohmann-json3-dev    # JSON output of the CLI and the replay job
  libtomlplusplus-dev   # the TOML configuration file
  libncurses-dev        # the terminal UI of `ipcbus top`
  libgtest-dev libgmock-dev  # tests
  librapidcheck-dev     # property-based tests against reference models (tests/property)
  libbenchmark-dev      # micro benchmarks
  libzmq3-dev iceoryx libiceoryx-posh-dev  # peers the benchmark measures us against
  gnuplot-nox           # the benchmark's PNG plots
  clang libclang-rt-14-dev  # libFuzzer targets
  clang-tidy            # static analysis (scripts/lint.sh, .clang-tidy)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "error: packages are missing and this is not root; run as root or install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
