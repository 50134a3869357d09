"""Helpers for tests that start real Blizzard clusters (standard library only).

A test gets a private cluster: free loopback ports, pools under its own
/dev/shm directory, a run directory in the test's temp dir; `close()` stops
only the processes this cluster started and removes its pools. With
`netns=True` (DPDK variants, root) every node runs in its own network
namespace (tools/blizzard_cluster.py NetnsLayout) named after the test's pid,
and `close()` removes the namespaces too.
"""

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


def free_base_port(nodes, host="127.0.0.1"):
    """A base port b such that b+1..b+nodes and b+101..b+100+nodes are free."""
    rng = random.Random(os.getpid() ^ int(time.time() * 1000))
    for _ in range(200):
        base = rng.randrange(20000, 55000, 200)
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


def check(cond, message):
    if not cond:
        raise AssertionError(message)
