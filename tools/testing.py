"""Helpers for tests that start real Blizzard clusters (standard library only).

A test gets a private cluster: free loopback ports, pools under its own
/dev/shm directory, a run directory in the test's temp dir; `close()` stops
only the processes this cluster started and removes its pools. With
`netns=True` (DPDK variants, root) every node runs in its own network
namespace (tools/blizzard_cluster.py NetnsLayout) named after the test's pid,
and `close()` removes the namespaces too.
"""

import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blizzard_cluster  # noqa: E402


def _ports_free(host, ports):
    for p in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, p))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_base_port(nodes, host="127.0.0.1"):
    """A base port b such that b+1..b+nodes and b+101..b+100+nodes are free,
    below the kernel's ephemeral range: a node started late (a joining
    member) must not find its port taken by another node's outgoing
    connection attempts, which bind ephemeral ports."""
    rng = random.Random(os.getpid() ^ int(time.time() * 1000))
    ephemeral_lo, _ = _ephemeral_range()
    top = max(ephemeral_lo - 200, 10200)
    for _ in range(200):
        base = rng.randrange(10000, top, 200)
        ports = [base + i for i in range(1, nodes + 1)] + \
                [base + 100 + i for i in range(1, nodes + 1)]
        if _ports_free(host, ports):
            return base
    raise RuntimeError("no free port range found")


def netns_unavailable():
    """Why this process cannot create network namespaces, or None if it can."""
    if os.geteuid() != 0:
        return "not root"
    probe = "bzprobe%d" % (os.getpid() % 100000)
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return "ip netns add: %s" % made.stderr.strip()
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def test_deadline(seconds):
    """Fails the test (AssertionError in the main thread, so `finally` blocks
    still clean up) if it runs longer than `seconds`, or when it is sent
    SIGTERM (Bazel's timeout)."""
    def expired(signum, frame):
        raise AssertionError("test did not finish within %d s" % seconds)

    def terminated(signum, frame):
        raise AssertionError("terminated (SIGTERM)")
    signal.signal(signal.SIGALRM, expired)
    signal.signal(signal.SIGTERM, terminated)
    signal.alarm(seconds)


def sweep_stale_test_netns():
    """Removes the networks of earlier test runs that died without cleaning
    up (SIGKILL): namespaces bzt<pid>n<i>/bzt<pid>sw whose pid is gone."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        m = re.match(r"^(bzt(\d+))(n\d|sw)\b", line)
        if m and not os.path.exists("/proc/%s" % m.group(2)):
            names.add(m.group(1))
    for name in sorted(names):
        print("removing the network of a dead test run: %s*" % name)
        blizzard_cluster.NetnsLayout(name, {}).down()


class TestCluster(blizzard_cluster.Cluster):
    def __init__(self, binary, nodes=3, name="cluster", netns=False, **config_args):
        tmp = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp(prefix="blizzard_")
        self.pool_dir = "/dev/shm/blizzard_test_%s_%d_%d" % (name, os.getpid(),
                                                             int(time.time()))
        run_dir = os.path.join(tmp, name)
        os.makedirs(run_dir, exist_ok=True)
        config = os.path.join(run_dir, "cluster.ini")
        # Namespaces are named after the pid: short (interface names), and a
        # crashed run's leftovers never collide with a later run.
        netns_name = "bzt%d" % (os.getpid() % 10000000) if netns else None
        if netns:
            sweep_stale_test_netns()
        with open(config, "w") as f:
            if netns:
                f.write(blizzard_cluster.gen_netns_config(
                    nodes, 7000, self.pool_dir, netns_name, **config_args))
            else:
                f.write(blizzard_cluster.gen_config(nodes, free_base_port(nodes),
                                                    self.pool_dir, **config_args))
        super().__init__(config, run_dir, binary, netns=netns_name)

    def close(self):
        try:
            self.stop()  # In netns mode also removes the network.
        finally:
            shutil.rmtree(self.pool_dir, ignore_errors=True)

    def dump_logs(self):
        for nid in sorted(self.nodes):
            print("---- node %d log (tail) ----\n%s" % (nid, self.tail_log(nid, 40)))
        keys = ("role", "term", "leader_id", "commit_index", "applied_index", "first_index",
                "last_index", "voters", "learners", "snapshot_index", "snapshots_installed",
                "snapshot_chunks_received", "snapshot_chunks_sent", "peer_messages_malformed")
        for nid, info in sorted(self.infos().items()):
            print("---- node %d INFO: %s" % (nid, " ".join(
                "%s=%s" % (k, info.get(k)) for k in keys)))


def run_test(name, body, nodes=3, extra_args=(), **config_args):
    """The frame of an end-to-end test: parses --binary (and each
    (flag, help) of extra_args, all required), runs body(cluster, args) on a
    private TestCluster, dumps the nodes' logs and INFO if it fails, always
    stops the cluster and removes its pools, and prints PASS."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    for flag, help_text in extra_args:
        ap.add_argument(flag, required=True, help=help_text)
    args = ap.parse_args()
    cluster = TestCluster(args.binary, nodes=nodes, name=name, **config_args)
    ok = False
    try:
        body(cluster, args)
        ok = True
    finally:
        if not ok:
            cluster.dump_logs()
        cluster.close()
    print("PASS")


def check(cond, message):
    if not cond:
        raise AssertionError(message)


class AckWriter:
    """Writes new keys to whichever node leads (pipelined SETs), following
    leader changes, and records every acknowledged write. A write answered
    with an error or not at all is not acknowledged (its outcome is unknown)."""

    def __init__(self, cluster, prefix="k", value_bytes=100, pipeline=200):
        self.cluster = cluster
        self.prefix = prefix
        self.value_bytes = value_bytes
        self.pipeline = pipeline
        self.acked = {}
        self.next = 0
        self.errors = 0
        self.client = None

    def value(self, i):
        return ("%s%d:" % (self.prefix, i)).encode().ljust(self.value_bytes, b"v")

    def _drop_client(self):
        if self.client is not None:
            self.client.close()
        self.client = None

    def write_batch(self, leader_timeout=30.0):
        """One pipeline of new keys; returns how many were acknowledged."""
        if self.client is None:
            nid = self.cluster.wait_leader(timeout=leader_timeout)
            self.client = self.cluster.client(nid, timeout=10.0)
        first = self.next
        self.next += self.pipeline
        keys = ["%s%d" % (self.prefix, i) for i in range(first, self.next)]
        try:
            replies = self.client.pipeline(
                [("SET", k, self.value(first + j)) for j, k in enumerate(keys)])
        except (OSError, ConnectionError):
            self._drop_client()
            self.errors += 1
            return 0
        ok = 0
        for j, (k, r) in enumerate(zip(keys, replies)):
            if r == "OK":
                self.acked[k] = self.value(first + j)
                ok += 1
            else:
                self.errors += 1
        if ok < len(keys):
            self._drop_client()  # Leader changed or redirected: find it again.
            time.sleep(0.05)
        return ok

    def run(self, stop, deadline_s=120.0):
        """Writes until `stop` (a threading.Event) is set; for a thread."""
        deadline = time.time() + deadline_s
        while not stop.is_set() and time.time() < deadline:
            try:
                self.write_batch(leader_timeout=5.0)
            except RuntimeError:
                time.sleep(0.05)  # No leader for a moment.
        self._drop_client()


def verify_acked(cluster, nodes, acked, chunk=500):
    """Every acknowledged key has its value on every node in `nodes` (local,
    READONLY reads: call once the nodes have caught up)."""
    keys = sorted(acked)
    for nid in nodes:
        c = cluster.client(nid, timeout=10.0)
        try:
            c.command("READONLY")
            for i in range(0, len(keys), chunk):
                part = keys[i:i + chunk]
                got = c.command("MGET", *part)
                for k, v in zip(part, got):
                    check(v == acked[k], "node %d: acknowledged key %s is %r, expected %r" % (
                        nid, k, v, acked[k]))
        finally:
            c.close()


def wait_until(what, cond, timeout=60.0, interval=0.1):
    """Polls cond() until it returns a true value (returned) or times out."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)
