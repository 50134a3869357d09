#!/bin/bash
# One command for the comparison the project exists for: builds blizzard_load
# and the TCP node variants that exist, runs unreplicated (1 node), logical
# (3 nodes) and, when //node:blizzard_tcp_physical exists, physical (3 nodes)
# on the same workloads and value sizes, and writes bench/results/compare.csv,
# PNG plots and a summary table. Options go to compare.py (--help).
#
#   bench/compare.sh                      # defaults: about 3-5 minutes
#   bench/compare.sh --duration-s 10 --workloads set,getset --value-sizes 128
#   BAZEL_OUTPUT_BASE=/root/.cache/bazel_x bench/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BAZEL=(bazel)
if [[ -n "${BAZEL_OUTPUT_BASE:-}" ]]; then BAZEL+=("--output_base=$BAZEL_OUTPUT_BASE"); fi
quiet() { grep -v -E 'linux-sandbox|process-wrapper' || true; }

for tool in /usr/bin/python3 gnuplot; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool missing (tools/setup.sh)" >&2; exit 1; }
done

# The TCP node variants (DPDK variants need veth/netns set-up: not here).
mapfile -t VARIANTS < <("${BAZEL[@]}" query 'kind(cc_binary, //node:*)' 2>/dev/null |
  sed -n 's|^//node:\(blizzard_tcp_[a-z_]*\)$|\1|p')
if ((${#VARIANTS[@]} == 0)); then
  echo "compare.sh: bazel query found no //node:blizzard_tcp_* binary" >&2
  exit 1
fi
echo "compare.sh: building //bench:blizzard_load ${VARIANTS[*]/#/\/\/node:}"
"${BAZEL[@]}" build --symlink_prefix=/ //bench:blizzard_load "${VARIANTS[@]/#///node:}" 2>&1 | quiet | tail -2
BIN=$("${BAZEL[@]}" info --symlink_prefix=/ bazel-bin 2>/dev/null)

VARIANT_LIST=$(IFS=,; echo "${VARIANTS[*]}")
exec /usr/bin/python3 bench/compare.py --bin-dir "$BIN" --variants "$VARIANT_LIST" "$@"
