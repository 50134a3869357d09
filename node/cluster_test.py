"""A real 3-node cluster: separate processes, real pmem pools.

Writes 10,000 keys through redis-py (an independent Redis client), SIGKILLs
the leader, writes more while the cluster fails over, restarts the killed
node and checks every acknowledged write on every node once caught up; then
stops all nodes, restarts all, and reads everything back.

With --netns (root) every node runs in its own network namespace on a veth
bridge (tools/blizzard_cluster.py NetnsLayout; a DPDK variant over
af_packet, a TCP variant by host routes over the same veths), and between
the fail-over and the full restart the leader's link is cut: the others
elect a leader and take writes, the link is healed, and every acknowledged
write is on every node. --mtu-bytes N (with --netns) sets mtu_bytes in the
cluster file and checks that every bridge-side veth carries that MTU.

Run by //node:cluster_test, //node:dpdk_cluster_test and
//node:tcp_netns_cluster_test (Debian's /usr/bin/python3 with python3-redis).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from testing import TestCluster, check, netns_unavailable, test_deadline  # noqa: E402

KEYS_FIRST = 10000
KEYS_DURING_FAILOVER = 3000
KEYS_DURING_PARTITION = 3000
KEYS_AFTER_HEAL = 1000
PIPELINE = 250


def value_of(key):
    return ("v:%s:" % key + "x" * (len(key) % 17)).encode()


class Writer:
    """Writes keys to whichever node leads, recording what was acknowledged."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.acked = {}
        self.unknown = set()  # Sent, answered with an error or no answer.
        self.client = None

    def _connect(self):
        nid = self.cluster.wait_leader(timeout=30)
        n = self.cluster.nodes[nid]
        self.client = redis.Redis(host=n.host, port=n.client_port,
                                  socket_timeout=5, socket_connect_timeout=2)

    def write(self, keys, deadline_s=120):
        pending = list(keys)
        deadline = time.time() + deadline_s
        while pending:
            check(time.time() < deadline, "could not write %d keys in time" % len(pending))
            if self.client is None:
                self._connect()
            batch, pending = pending[:PIPELINE], pending[PIPELINE:]
            pipe = self.client.pipeline(transaction=False)
            for k in batch:
                pipe.set(k, value_of(k))
            try:
                results = pipe.execute(raise_on_error=False)
            except (redis.ConnectionError, redis.TimeoutError):
                # Outcome unknown for the whole batch: retry it (SET is
                # idempotent), but never count it acknowledged until a reply.
                self.unknown.update(batch)
                pending = batch + pending
                self.client = None
                time.sleep(0.05)
                continue
            retry = []
            for k, r in zip(batch, results):
                if r is True:
                    self.acked[k] = value_of(k)
                    self.unknown.discard(k)
                else:
                    self.unknown.add(k)
                    retry.append(k)
            if retry:
                self.client = None  # Leader changed: find it again.
                pending = retry + pending
                time.sleep(0.05)


def verify_everywhere(cluster, acked, label):
    """Every acknowledged key, read on every node (READONLY: local reads)."""
    infos = cluster.wait_caught_up(timeout=90)
    hashes = {nid: i["state_hash"] for nid, i in infos.items()}
    check(len(set(hashes.values())) == 1, "%s: state hashes differ: %s" % (label, hashes))
    keys = sorted(acked)
    for nid in sorted(cluster.nodes):
        n = cluster.nodes[nid]
        c = redis.Redis(host=n.host, port=n.client_port, socket_timeout=10)
        c.execute_command("READONLY")
        missing = 0
        for i in range(0, len(keys), 1000):
            chunk = keys[i:i + 1000]
            for k, v in zip(chunk, c.mget(chunk)):
                if v != acked[k]:
                    missing += 1
        c.close()
        check(missing == 0, "%s: node %d lost %d acknowledged writes" % (label, nid, missing))
    print("%s: %d acknowledged keys present on all %d nodes, state hash %s" % (
        label, len(keys), len(cluster.nodes), next(iter(hashes.values()))))


def partition_leader(cluster, w):
    """Cuts the leader's link, writes through the majority, heals, verifies."""
    old = cluster.wait_leader()
    cluster.partition([old])
    print("cut node %d (leader) off the bridge" % old)
    # Writes sent to the cut-off leader can never reach a majority: none may
    # be acknowledged (the leader still believes it leads for a while, so
    # they are really proposed). Any that were would be verified below.
    n = cluster.nodes[old]
    stale = redis.Redis(host=n.host, port=n.client_port, socket_timeout=3,
                        socket_connect_timeout=2)
    pipe = stale.pipeline(transaction=False)
    minority_keys = ["m%05d" % i for i in range(200)]
    for k in minority_keys:
        pipe.set(k, value_of(k))
    try:
        results = pipe.execute(raise_on_error=False)
    except (redis.ConnectionError, redis.TimeoutError):
        results = []
    stale.close()
    acked_by_minority = [k for k, r in zip(minority_keys, results) if r is True]
    for k in acked_by_minority:
        w.acked[k] = value_of(k)
    print("cut-off leader: %d of %d writes answered, %d acknowledged" % (
        len(results), len(minority_keys), len(acked_by_minority)))
    check(not acked_by_minority, "a leader without a majority acknowledged %d writes" %
          len(acked_by_minority))
    new = cluster.wait_leader(exclude=(old,))
    print("majority elected node %d" % new)
    w.client = None
    w.write(["p%05d" % i for i in range(KEYS_DURING_PARTITION)])
    check(len(w.acked) == KEYS_FIRST + KEYS_DURING_FAILOVER + KEYS_DURING_PARTITION,
          "partition phase: not all writes acknowledged")
    cut_info = cluster.info(old)
    print("node %d while cut off: role %s, term %s, applied %s" % (
        old, cut_info["role"], cut_info["term"], cut_info["applied_index"]))
    cluster.heal()
    print("healed node %d's link" % old)
    w.write(["h%05d" % i for i in range(KEYS_AFTER_HEAL)])
    verify_everywhere(cluster, w.acked, "after partition and heal")
    infos = cluster.infos()
    for nid in sorted(infos):
        i = infos[nid]
        print("node %d transport: frames sent %s received %s, retransmissions %s, "
              "timeouts %s, out-of-order %s, reassembly failures %s" % (
                  nid, i["transport_frames_sent"], i["transport_frames_received"],
                  i["transport_retransmissions"], i["transport_retransmit_timeouts"],
                  i["transport_frames_out_of_order"], i["transport_reassembly_failures"]))
    if "dpdk" in os.path.basename(cluster.binary):
        check(all(int(i["transport_frames_sent"]) > 0 for i in infos.values()),
              "INFO shows no DPDK frames: is this the DPDK variant?")
    else:
        # Kernel TCP: the replication traffic crossed the bridge (not a
        # route through the root namespace): its ports forwarded ~1 MB here.
        bridged = 0
        for nid in sorted(cluster.nodes):
            out = subprocess.run(["ip", "-j", "-s", "-n", cluster.netns.switch_ns, "link",
                                  "show", "dev", cluster.netns.bridge_port(nid)],
                                 capture_output=True, text=True).stdout
            bridged += json.loads(out)[0]["stats64"]["tx"]["bytes"]
        print("bridge ports forwarded %d bytes" % bridged)
        check(bridged > (256 << 10), "only %d bytes crossed the bridge: peer traffic "
              "did not take the veth links" % bridged)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--inspect", required=True, help="the blizzard_inspect binary")
    ap.add_argument("--netns", action="store_true",
                    help="nodes in network namespaces; adds the partition phase")
    ap.add_argument("--mtu-bytes", type=int,
                    help="with --netns: mtu_bytes in the cluster file, veths at that MTU")
    ap.add_argument("--deadline-s", type=int, default=240,
                    help="fail (and clean up) if the test runs longer")
    args = ap.parse_args()
    if args.netns:
        why = netns_unavailable()
        if why:
            print("SKIPPED: cannot create network namespaces (%s)" % why)
            return
    test_deadline(args.deadline_s)
    extra = {"mtu_bytes": args.mtu_bytes} if args.netns and args.mtu_bytes else {}
    cluster = TestCluster(args.binary, nodes=3, name="failover", netns=args.netns, **extra)
    ok = False
    try:
        cluster.start()
        leader = cluster.wait_leader()
        print("leader: node %d" % leader)

        w = Writer(cluster)
        t0 = time.time()
        w.write(["k%05d" % i for i in range(KEYS_FIRST)])
        print("wrote %d keys in %.2fs" % (KEYS_FIRST, time.time() - t0))
        check(len(w.acked) == KEYS_FIRST, "first phase: not all writes acknowledged")

        leader = cluster.wait_leader()
        cluster.kill(leader, signal.SIGKILL)
        print("SIGKILLed leader node %d" % leader)
        w.write(["f%05d" % i for i in range(KEYS_DURING_FAILOVER)])
        new_leader = cluster.wait_leader(exclude=(leader,))
        print("new leader: node %d; %d keys acknowledged in total" % (new_leader, len(w.acked)))
        check(len(w.acked) == KEYS_FIRST + KEYS_DURING_FAILOVER,
              "failover phase: not all writes acknowledged")

        cluster.start_node(leader)
        cluster.wait_ports(nodes=[leader])
        print("restarted node %d" % leader)
        verify_everywhere(cluster, w.acked, "after failover")
        if args.netns and args.mtu_bytes:
            for nid in sorted(cluster.nodes):
                link = subprocess.run(
                    ["ip", "-n", cluster.netns.switch_ns, "-o", "link", "show",
                     cluster.netns.bridge_port(nid)], capture_output=True, text=True).stdout
                check(" mtu %d " % args.mtu_bytes in link,
                      "node %d's bridge port: %s" % (nid, link.strip()))
        if args.netns:
            partition_leader(cluster, w)

        cluster.stop()
        # The pool inspector verifies every checksum of every node's pools.
        for nid in sorted(cluster.nodes):
            out = subprocess.run([args.inspect, "--config=%s" % cluster.config_path,
                                  "--id=%d" % nid, "--entries=3"],
                                 capture_output=True, text=True, timeout=120)
            check(out.returncode == 0, "inspector on node %d failed:\n%s%s" % (
                nid, out.stdout, out.stderr))
            check(": OK" in out.stdout and "keys" in out.stdout,
                  "inspector output for node %d:\n%s" % (nid, out.stdout))
        print("pool inspector: every node's log and data pools verified")
        print("stopped all nodes; restarting")
        cluster.start()
        cluster.wait_leader()
        verify_everywhere(cluster, w.acked, "after full restart")

        # Linearizable reads through the leader see everything too.
        w2 = Writer(cluster)
        w2._connect()
        keys = sorted(w.acked)
        got = w2.client.mget(keys[:5000])
        check(all(v == w.acked[k] for k, v in zip(keys[:5000], got)), "leader reads differ")
        ok = True
    finally:
        if not ok:
            cluster.dump_logs()
        cluster.close()
    if args.netns:
        left = cluster.netns.existing_namespaces() + [
            p for p in ("/var/run/dpdk/%s" % cluster.netns.eal_prefix(i) for i in cluster.nodes)
            if os.path.exists(p)]
        check(not left, "left behind after close(): %s" % left)
        print("network namespaces and EAL files removed")
    print("PASS")


if __name__ == "__main__":
    main()
