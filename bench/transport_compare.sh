#!/bin/bash
# The full cluster on each transport: 3 nodes of blizzard_tcp_logical (kernel
# TCP on loopback) vs 3 nodes of blizzard_dpdk_logical (DPDK on af_packet,
# each node in its own network namespace on a veth bridge, clients over a
# second veth: tools/blizzard_cluster.py netns mode), same workloads through
# compare.py. Needs root.
#
# The machine is shared, and its load changes by the minute: the two
# transports are therefore run in alternating rounds (TCP, DPDK, TCP, DPDK,
# ...), each round a fresh cluster per workload, and transport_summary.py
# reports per cell the median over the rounds with the range. Node CPU per
# op (from /proc) is the number least disturbed by other work.
# Results: bench/results/transport/{round*,summary.csv}; analysis in
# transport/README.md.
#
#   bench/transport_compare.sh                 # 3 rounds, set/getset, 16 B and 1 KiB: ~6 min
#   ROUNDS=5 bench/transport_compare.sh --duration-s 5
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
ROUNDS=${ROUNDS:-3}
OUT=bench/results/transport

echo "transport_compare.sh: building //bench:blizzard_load //node:blizzard_tcp_logical //node:blizzard_dpdk_logical"
"${BAZEL[@]}" build --symlink_prefix=/ //bench:blizzard_load //node:blizzard_tcp_logical \
  //node:blizzard_dpdk_logical 2>&1 | quiet | tail -2
BIN=$("${BAZEL[@]}" info --symlink_prefix=/ bazel-bin 2>/dev/null)

rm -rf "$OUT"
status=0
for ((round = 1; round <= ROUNDS; round++)); do
  for mode in logical-3 logical-3-dpdk; do
    echo "== round $round/$ROUNDS: $mode"
    /usr/bin/python3 bench/compare.py --bin-dir "$BIN" \
      --variants blizzard_tcp_logical,blizzard_dpdk_logical --modes "$mode" \
      --workloads set,getset --value-sizes 16,1024 --duration-s 4 --fresh-cluster-per-run \
      --out-dir "$OUT/round$round-$mode" --no-plots "$@" | grep -E '^  |FAILED' || status=1
  done
done
/usr/bin/python3 bench/transport_summary.py "$OUT"
exit $status
