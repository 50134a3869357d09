"""Helpers for tests that start real Blizzard clusters (standard library only).

A test gets a private cluster: free loopback ports, pools under its own
/dev/shm directory, a run directory in the test's temp dir; `close()` stops
only the processes this cluster started and removes its pools.
"""

import os
import random
import shutil
import socket
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


class TestCluster(blizzard_cluster.Cluster):
    def __init__(self, binary, nodes=3, name="cluster", **config_args):
        tmp = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp(prefix="blizzard_")
        self.pool_dir = "/dev/shm/blizzard_test_%s_%d_%d" % (name, os.getpid(),
                                                             int(time.time()))
        run_dir = os.path.join(tmp, name)
        os.makedirs(run_dir, exist_ok=True)
        config = os.path.join(run_dir, "cluster.ini")
        with open(config, "w") as f:
            f.write(blizzard_cluster.gen_config(nodes, free_base_port(nodes),
                                                self.pool_dir, **config_args))
        super().__init__(config, run_dir, binary)

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.pool_dir, ignore_errors=True)

    def dump_logs(self):
        for nid in sorted(self.nodes):
            print("---- node %d log (tail) ----\n%s" % (nid, self.tail_log(nid, 40)))


def check(cond, message):
    if not cond:
        raise AssertionError(message)
