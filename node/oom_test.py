"""A full data pool never kills the cluster (real 3-node clusters).

Each node has a 20 MiB data pool (a 7 MiB arena). A client fills it with
16 KiB values until it gets Redis's OOM error, then checks:
  - every node is still running, and all agree on the applied index and the
    state hash (every replica failed the same ops the same way);
  - reads, DEL and pops still work; DEL frees space (INFO data_used_bytes)
    and writes of the same size succeed again;
  - a node that was down while the pool filled replays those entries after
    a restart and agrees (logical mode re-executes the OOM ops: its
    oom_applied counter grows too);
and this twice:
  1. max_memory_percent = 90: the leader refuses growing commands before
     the log (INFO oom_refused > 0);
  2. max_memory_percent = 100: admission control is off, so the apply-time
     per-op OOM is hit: on every replica in logical mode (oom_applied > 0 on
     each), on the leader when it builds the entry in physical mode; a
     SESSION-wrapped write that got OOM is answered OOM again on retry
     (recorded like any result, in both modes).

Run by //node:oom_test (logical) and //node:oom_physical_test.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from blizzard_cluster import RespError  # noqa: E402
from testing import TestCluster, check, run_test, test_deadline  # noqa: E402

OOM = "OOM command not allowed when used memory > 'maxmemory'."
VALUE = b"v" * (16 << 10)
POOL = dict(data_pool_bytes="20M", log_pool_bytes="64M")


def is_oom(reply):
    return isinstance(reply, RespError) and str(reply) == OOM


def on_leader(cluster, commands):
    """Sends a pipeline to the current leader, retrying while there is none
    or it redirects; returns the replies."""
    for _ in range(100):
        nid = cluster.wait_leader()
        c = cluster.client(nid)
        try:
            replies = c.pipeline(commands)
        finally:
            c.close()
        if any(isinstance(r, RespError) and str(r).startswith(("MOVED", "CLUSTERDOWN",
                                                                "TRYAGAIN", "BUSY"))
               for r in replies):
            continue
        return replies
    raise AssertionError("no leader answered %r" % (commands[:1],))


def fill(cluster, prefix):
    """SETs 16 KiB values, 8 per pipeline, until some are refused with OOM.
    Returns (keys stored, OOM replies)."""
    stored, oom = [], 0
    for batch in range(1000):
        keys = ["%s%d" % (prefix, batch * 8 + i) for i in range(8)]
        replies = on_leader(cluster, [("SET", k, VALUE) for k in keys])
        for k, r in zip(keys, replies):
            if r == "OK":
                stored.append(k)
            elif is_oom(r):
                oom += 1
            else:
                raise AssertionError("SET %s: %r" % (k, r))
        if oom >= 8:
            return stored, oom
    raise AssertionError("the data pool never filled")


def all_running(cluster, down=()):
    for nid in sorted(set(cluster.nodes) - set(down)):
        check(cluster.pid(nid) is not None,
              "node %d is down after the pool filled: %s\n%s" % (
                  nid, cluster.exit_status(nid), cluster.tail_log(nid)))


def agree(cluster, what):
    infos = cluster.wait_caught_up(timeout=60)
    hashes = {n: i["state_hash"] for n, i in infos.items()}
    running = [n for n in cluster.nodes if cluster.pid(n) is not None]
    check(len(infos) == len(running), "%s: nodes answering INFO: %s" % (what, sorted(infos)))
    check(len(set(hashes.values())) == 1, "%s: state hashes differ: %s" % (what, hashes))
    return infos


def scenario(cluster, percent, physical):
    print("---- max_memory_percent = %d" % percent)
    cluster.start()
    cluster.wait_ports()
    leader = cluster.wait_leader()
    # A follower misses the fill and replays it after a restart.
    late = next(n for n in sorted(cluster.nodes) if n != leader)
    cluster.kill(late, signal.SIGKILL)
    check(on_leader(cluster, [("RPUSH", "list", "a", "b", "c"), ("SET", "n", "1")]) == [3, "OK"],
          "writes before the fill")
    stored, oom = fill(cluster, "k")
    print("stored %d values of 16 KiB, %d refused with OOM" % (len(stored), oom))
    check(len(stored) > 200, "only %d values fit in a 7 MiB arena" % len(stored))
    leader = cluster.wait_leader()
    if percent == 100:
        # Recorded like any other result: the retry gets the same OOM.
        first = on_leader(cluster, [("SESSION", 5, 1, "SET", "session-key", VALUE)])[0]
        retry = on_leader(cluster, [("SESSION", 5, 1, "SET", "session-key", VALUE)])[0]
        check(is_oom(first) and is_oom(retry), "SESSION under OOM: %r then %r" % (first, retry))
    # Reads, pops and deletes still work on a full pool.
    replies = on_leader(cluster, [("GET", stored[0]), ("LPOP", "list"), ("INCR", "n")])
    check(replies[0] == VALUE and replies[1] == b"a", "reads/pops on a full pool: %r" %
          (replies[:2],))
    all_running(cluster, down=[late])
    infos = agree(cluster, "full")
    used_full = int(infos[leader]["data_used_bytes"])
    capacity = int(infos[leader]["data_capacity_bytes"])
    refused = int(infos[leader]["oom_refused"])
    applied = {n: int(i["oom_applied"]) for n, i in infos.items()}
    print("used %d of %d bytes; leader refused %d; ops answered OOM when applied: %s" % (
        used_full, capacity, refused, applied))
    check(infos[leader]["max_memory_percent"] == str(percent), "INFO max_memory_percent")
    if percent < 100:
        check(refused > 0, "admission control refused nothing")
        check(used_full * 100 >= capacity * percent, "refused below the threshold")
    else:
        check(refused == 0, "admission control is off at 100%%, refused %d" % refused)
        if physical:
            check(applied[leader] > 0, "the leader never hit the apply-time OOM")
        else:
            check(all(v > 0 for v in applied.values()),
                  "every replica must hit the apply-time OOM: %s" % applied)

    # DEL frees space; writes of the same size succeed again.
    half = stored[: len(stored) // 2]
    for i in range(0, len(half), 50):
        chunk = half[i:i + 50]
        check(on_leader(cluster, [("DEL",) + tuple(chunk)]) == [len(chunk)], "DEL")
    infos = agree(cluster, "after DEL")
    used = int(infos[cluster.wait_leader()]["data_used_bytes"])
    check(used < used_full * 3 // 4, "DEL freed nothing: %d of %d" % (used, used_full))
    replies = on_leader(cluster, [("SET", "again%d" % i, VALUE) for i in range(20)])
    check(replies == ["OK"] * 20, "writes after DEL: %r" % (replies,))

    # The node that missed it all replays the entries (OOM ops included).
    cluster.start_node(late)
    cluster.wait_ports(nodes=[late])
    infos = agree(cluster, "after the restart of node %d" % late)
    if not physical and percent == 100:
        check(int(infos[late]["oom_applied"]) > 0,
              "the restarted node did not replay the OOM ops: %s" % infos[late]["oom_applied"])
    # And a restart of everything (a full-cluster power loss) agrees too.
    cluster.stop()
    cluster.start()
    cluster.wait_ports()
    check(on_leader(cluster, [("GET", "again0")]) == [VALUE], "after a full restart")
    all_running(cluster)
    agree(cluster, "after a full restart")


def body(cluster, args):
    physical = args.mode == "physical"
    scenario(cluster, 90, physical)
    second = TestCluster(args.binary, nodes=3, name="oom100",
                         cluster_extra=["max_memory_percent = 100"], **POOL)
    try:
        scenario(second, 100, physical)
    except BaseException:
        second.dump_logs()
        raise
    finally:
        second.close()


if __name__ == "__main__":
    test_deadline(240)
    run_test("oom", body, nodes=3, extra_args=[("--mode", "logical or physical")],
             cluster_extra=["max_memory_percent = 90"], **POOL)
