#!/bin/bash
# Installs everything Blizzard needs from Debian bookworm's archive (as root;
# uses sudo when not root). Idempotent: installs only what is missing.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap    # Bazel 4.2.3, the only Bazel that works offline here
  g++ pkg-config     # C++20 compiler; pkg-config feeds third_party/pkg_config.bzl
  libabsl-dev        # Status/StatusOr, containers, strings, flags
  libgtest-dev libgmock-dev  # unit tests
  libbenchmark-dev   # bench/ micro-benchmarks
  libpmemobj-dev libpmem-dev pmdk-tools  # persistent memory (PMDK)
  libdpdk-dev        # the DPDK transport
  libxxhash-dev      # XXH3 checksums of log entries, frames, pools
  libjemalloc-dev    # the nodes' malloc (node/README.md, Dependencies)
  redis-tools        # redis-cli, redis-benchmark: independent clients
  redis-server       # the reference the typed commands are tested against
  python3-redis      # redis-py: the end-to-end tests' client
  gnuplot-nox        # bench/compare.sh plots
  python3 procps iproute2
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
echo "setup: all packages present"
