#!/bin/bash
# The full cluster on each transport: 3 nodes of blizzard_tcp_logical (kernel
# TCP on loopback) vs 3 nodes of blizzard_dpdk_logical (DPDK on af_packet,
# each node in its own network namespace on a veth bridge, clients over a
# second veth: tools/blizzard_cluster.py netns mode), same workloads through
# compare.py. Needs root. Results: bench/results/transport/compare.csv and
# the table; analysis in transport/README.md.
#
#   bench/transport_compare.sh                       # set/getset, 16 B and 1 KiB
#   bench/transport_compare.sh --repeat 3 --duration-s 5
#   BAZEL_OUTPUT_BASE=/root/.cache/bazel_x bench/transport_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $EUID -ne 0 ]]; then
  echo "transport_compare.sh: needs root (network namespaces, DPDK EAL)" >&2
  exit 1
fi
BAZEL=(bazel)
if [[ -n "${BAZEL_OUTPUT_BASE:-}" ]]; then BAZEL+=("--output_base=$BAZEL_OUTPUT_BASE"); fi
quiet() { grep -v -E 'linux-sandbox|process-wrapper' || true; }

echo "transport_compare.sh: building //bench:blizzard_load //node:blizzard_tcp_logical //node:blizzard_dpdk_logical"
"${BAZEL[@]}" build --symlink_prefix=/ //bench:blizzard_load //node:blizzard_tcp_logical \
  //node:blizzard_dpdk_logical 2>&1 | quiet | tail -2
BIN=$("${BAZEL[@]}" info --symlink_prefix=/ bazel-bin 2>/dev/null)

exec /usr/bin/python3 bench/compare.py --bin-dir "$BIN" \
  --variants blizzard_tcp_logical,blizzard_dpdk_logical \
  --modes logical-3,logical-3-dpdk --workloads set,getset --value-sizes 16,1024 \
  --out-dir bench/results/transport --no-plots "$@"
