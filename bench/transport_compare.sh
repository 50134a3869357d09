#!/bin/bash
# The full cluster on each transport, in alternating rounds. Set-ups (each
# 3 nodes of a logical variant, the same blizzard_load runs through
# compare.py; tools/blizzard_cluster.py netns mode for all but the first):
#   logical-3                  kernel TCP on loopback (the issue's baseline)
#   logical-3-tcpns-mtu$MTU    kernel TCP between network namespaces, over
#                              the same veths and bridge as DPDK, MTU $MTU
#   logical-3-dpdk             DPDK on af_packet, 1500-byte frames
#   logical-3-dpdk-mtu$MTU     DPDK, mtu_bytes = $MTU (jumbo frames through
#                              af_packet: transport/dpdk/port_mtu.h)
#   logical-3-dpdk-mtu$MTU-spin$SPIN   the same with idle_spin_us = $SPIN
#   logical-3-dpdk[-mtu$MTU]-ack0      ack_delay_us = 0 (every ack at once,
#                              as before delayed acks): set-ups dpdk-noack,
#                              dpdk-jumbo-noack
# Needs root.
#
# The machine is shared, and its load changes by the minute: the set-ups
# therefore run in alternating rounds, each round a fresh cluster per
# workload, and transport_summary.py reports per cell the median over the
# rounds with the range, and PAIRED ratios (each round's run against the
# same round's baseline). Node CPU per op (from /proc) is the number least
# disturbed by other work.
# Results: $OUT/{round*,summary.csv,ratios.csv}; analysis in transport/README.md.
#
#   bench/transport_compare.sh                        # 3 rounds, SET 16 B and 1 KiB
#   ROUNDS=5 WORKLOADS=set,getset bench/transport_compare.sh
#   SETUPS="tcp dpdk-jumbo" MTU=9000 bench/transport_compare.sh
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
OUT=${OUT:-bench/results/transport/latest}
MTU=${MTU:-61000}  # 60 KiB af_packet frames: the fastest measured (transport/README.md)
SPIN=${SPIN:-30}
WORKLOADS=${WORKLOADS:-set}
VALUE_SIZES=${VALUE_SIZES:-16,1024}
SETUPS=${SETUPS:-tcp tcpns dpdk dpdk-jumbo dpdk-jumbo-spin}

echo "transport_compare.sh: building //bench:blizzard_load //node:blizzard_tcp_logical //node:blizzard_dpdk_logical"
"${BAZEL[@]}" build --symlink_prefix=/ //bench:blizzard_load //node:blizzard_tcp_logical \
  //node:blizzard_dpdk_logical 2>&1 | quiet | tail -2
BIN=$("${BAZEL[@]}" info --symlink_prefix=/ bazel-bin 2>/dev/null)

setup_args() {
  case "$1" in
    tcp) echo "--modes logical-3" ;;
    tcpns) echo "--modes logical-3-tcpns --netns-mtu-bytes $MTU --mode-suffix=-mtu$MTU" ;;
    dpdk) echo "--modes logical-3-dpdk" ;;
    dpdk-jumbo) echo "--modes logical-3-dpdk --netns-mtu-bytes $MTU --mode-suffix=-mtu$MTU" ;;
    dpdk-jumbo-noack)
      echo "--modes logical-3-dpdk --netns-mtu-bytes $MTU --netns-ack-delay-us 0" \
        "--mode-suffix=-mtu$MTU-ack0" ;;
    dpdk-noack) echo "--modes logical-3-dpdk --netns-ack-delay-us 0 --mode-suffix=-ack0" ;;
    dpdk-jumbo-spin)
      echo "--modes logical-3-dpdk --netns-mtu-bytes $MTU --netns-idle-spin-us $SPIN" \
        "--mode-suffix=-mtu$MTU-spin$SPIN" ;;
    *) echo "transport_compare.sh: unknown set-up $1" >&2; exit 2 ;;
  esac
}

rm -rf "$OUT"
status=0
for ((round = 1; round <= ROUNDS; round++)); do
  for setup in $SETUPS; do
    echo "== round $round/$ROUNDS: $setup (load average $(cut -d' ' -f1 /proc/loadavg))"
    # shellcheck disable=SC2046
    /usr/bin/python3 bench/compare.py --bin-dir "$BIN" \
      --variants blizzard_tcp_logical,blizzard_dpdk_logical $(setup_args "$setup") \
      --workloads "$WORKLOADS" --value-sizes "$VALUE_SIZES" --duration-s 4 \
      --fresh-cluster-per-run --out-dir "$OUT/round$round-$setup" --no-plots "$@" |
      grep -E '^  |FAILED' || status=1
  done
done
/usr/bin/python3 bench/transport_summary.py "$OUT"
exit $status
