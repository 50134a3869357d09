#!/bin/bash
# The README's main job: install, build, start a local 3-node cluster
# (blizzard_tcp_logical, pools in /dev/shm), run a short workload with real
# Redis clients, kill the leader, show the fail-over and that no
# acknowledged write was lost, then stop the cluster and print a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

VARIANT=${VARIANT:-blizzard_tcp_logical}
BASE_PORT=${BASE_PORT:-7100}
WORK=${WORK:-/tmp/blizzard-demo}
POOLS=${POOLS:-/dev/shm/blizzard-demo}
KEYS=${KEYS:-2000}

say() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nDEMO FAILED: %s\n' "$*" >&2; exit 1; }

say "Installing packages"
tools/setup.sh

say "Building //node:${VARIANT}"
bazel build "//node:${VARIANT}" 2>&1 | grep -v -E 'linux-sandbox|process-wrapper' | tail -3
# Ask Bazel where its outputs are (the bazel-bin link may point elsewhere).
BIN="$(bazel info bazel-bin 2>/dev/null)/node/${VARIANT}"
[[ -x "$BIN" ]] || fail "build produced no $BIN"

CLUSTER=(/usr/bin/python3 "$ROOT/tools/blizzard_cluster.py" --config "$WORK/cluster.ini" --run-dir "$WORK/run")
mkdir -p "$WORK"
if [[ -f "$WORK/cluster.ini" ]]; then
  "${CLUSTER[@]}" stop >/dev/null 2>&1 || true   # A previous demo's nodes.
fi
rm -rf "$POOLS" "$WORK/run"
/usr/bin/python3 tools/blizzard_cluster.py gen-config --nodes 3 --base-port "$BASE_PORT" \
  --dir "$POOLS" > "$WORK/cluster.ini"
trap '"${CLUSTER[@]}" stop >/dev/null 2>&1 || true' EXIT

say "Starting a 3-node cluster (config $WORK/cluster.ini, logs in $WORK/run)"
"${CLUSTER[@]}" start --binary "$BIN"
"${CLUSTER[@]}" status

port_of() { sed -n "/^\[node\.$1\]/,/^\[/s/^client_port = //p" "$WORK/cluster.ini"; }
LEADER=$("${CLUSTER[@]}" wait-leader)
PORT=$(port_of "$LEADER")

say "redis-benchmark against the leader (node $LEADER, port $PORT)"
redis-benchmark -h 127.0.0.1 -p "$PORT" -t set,get -n 20000 -c 16 -P 8 -r 100000 -q 2>&1 |
  tr '\r' '\n' | grep -E 'requests per second' || fail "redis-benchmark failed"

# Writes keys $1..$2 with redis-cli --pipe; fails unless every one was
# acknowledged.
write_keys() {
  local from=$1 to=$2 port=$3 out
  out=$(for ((i = from; i <= to; i++)); do printf 'SET demo:%d value-%d\r\n' "$i" "$i"; done |
    redis-cli -h 127.0.0.1 -p "$port" --pipe 2>&1)
  echo "$out" | tail -1
  echo "$out" | grep -q "errors: 0, replies: $((to - from + 1))" ||
    fail "not every write was acknowledged: $out"
}

say "Writing $KEYS keys with redis-cli --pipe"
write_keys 1 "$KEYS" "$PORT"

say "SIGKILL the leader (node $LEADER)"
"${CLUSTER[@]}" kill "$LEADER" --signal KILL
T0=$(date +%s%N)
NEW_LEADER=$("${CLUSTER[@]}" wait-leader --exclude "$LEADER")
T1=$(date +%s%N)
NEW_PORT=$(port_of "$NEW_LEADER")
echo "node $NEW_LEADER was elected leader $(((T1 - T0) / 1000000)) ms after the kill was observed"
"${CLUSTER[@]}" status

say "Writing $KEYS more keys to the new leader"
write_keys $((KEYS + 1)) $((2 * KEYS)) "$NEW_PORT"

say "Reading back all $((2 * KEYS)) acknowledged keys with redis-cli (linearizable reads)"
expected=$(for ((i = 1; i <= 2 * KEYS; i++)); do echo "value-$i"; done)
actual=$(for ((i = 1; i <= 2 * KEYS; i += 500)); do
  args=()
  for ((j = i; j < i + 500 && j <= 2 * KEYS; j++)); do args+=("demo:$j"); done
  redis-cli -h 127.0.0.1 -p "$NEW_PORT" --raw MGET "${args[@]}"
done)
[[ "$actual" == "$expected" ]] || fail "read-back differs from what was acknowledged"
echo "all $((2 * KEYS)) keys read back with their acknowledged values"

say "Restarting node $LEADER; it catches up from the new leader"
"${CLUSTER[@]}" restart "$LEADER"
"${CLUSTER[@]}" wait-caught-up --timeout 60
"${CLUSTER[@]}" status
hashes=$("${CLUSTER[@]}" status | grep -o 'hash [0-9a-f]*' | sort -u | wc -l)
[[ "$hashes" -eq 1 ]] || fail "replicas disagree on the state hash"

say "Stopping the cluster"
"${CLUSTER[@]}" stop
trap - EXIT

cat <<EOF

Summary
  variant            ${VARIANT} (3 nodes on 127.0.0.1:$((BASE_PORT + 1))-$((BASE_PORT + 3)))
  workload           redis-benchmark SET/GET, then $((2 * KEYS)) keys via redis-cli --pipe
  fail-over          leader node ${LEADER} SIGKILLed, node ${NEW_LEADER} took over
  acknowledged keys  $((2 * KEYS)), all read back; restarted node caught up, state hashes equal
  pools              ${POOLS} (remove with: rm -rf ${POOLS})
DEMO OK
EOF
