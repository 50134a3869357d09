"""Exactly-once client sessions on a real 3-node cluster.

`SESSION <client> <seq> INCR k` is applied once: a retry with the same
seq, sent to the NEW leader after the old one is SIGKILLed, is answered
from the replicated session table (same result, counter unchanged); a
retry pipelined right behind its original is filtered when applied; an
older seq is refused. Session tables are part of the replicated state:
with sessions_max = 4 and 10 clients, eviction is deterministic (equal
state hashes), the restarted node agrees, and the node's own keys are
neither addressable nor counted by DBSIZE.

Run by //node:session_test.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from blizzard_cluster import RespError  # noqa: E402
from testing import check, run_test  # noqa: E402

CONFIG = dict(cluster_extra=["sessions_max = 4"])


def on_leader(cluster, *cmd):
    """Sends one command to the current leader, retrying redirects."""
    for _ in range(100):
        nid = cluster.wait_leader()
        c = cluster.client(nid)
        try:
            reply = c.pipeline([cmd])[0]
        finally:
            c.close()
        if isinstance(reply, RespError) and str(reply).startswith(
                ("MOVED", "CLUSTERDOWN", "TRYAGAIN")):
            continue
        return reply
    raise AssertionError("no leader answered %r" % (cmd,))


def body(cluster, args):
    cluster.start()
    check(on_leader(cluster, "SESSION", 7, 1, "INCR", "counter") == 1, "first INCR")
    old = cluster.wait_leader()
    cluster.kill(old, signal.SIGKILL)
    new = cluster.wait_leader(exclude=(old,))
    print("SIGKILLed leader %d; new leader %d" % (old, new))
    # The client did not see the reply (say) and retries with the same seq.
    check(on_leader(cluster, "SESSION", 7, 1, "INCR", "counter") == 1,
          "a retry across the leader change must get the recorded result")
    check(on_leader(cluster, "GET", "counter") == b"1", "the retry was applied twice")
    check(on_leader(cluster, "SESSION", 7, 2, "INCR", "counter") == 2, "next seq")
    # A retry right behind its original, in the same pipeline.
    c = cluster.client(cluster.wait_leader())
    try:
        replies = c.pipeline([("SESSION", 7, 3, "INCRBY", "counter", 10)] * 2)
    finally:
        c.close()
    check(replies == [12, 12], "pipelined retry: %r" % (replies,))
    stale = on_leader(cluster, "SESSION", 7, 2, "INCR", "counter")
    check(isinstance(stale, RespError) and "stale" in str(stale), "old seq: %r" % (stale,))
    check(on_leader(cluster, "GET", "counter") == b"12", "counter after retries")
    # Reads inside a session are plain reads.
    check(on_leader(cluster, "SESSION", 7, 4, "GET", "counter") == b"12", "session read")

    # Ten clients through a 4-entry table: deterministic eviction.
    for client in range(100, 110):
        check(on_leader(cluster, "SESSION", client, 1, "SET", "c%d" % client, "x") == "OK",
              "client %d" % client)
    cluster.start_node(old)
    cluster.wait_ports(nodes=[old])
    infos = cluster.wait_caught_up(timeout=60)
    hashes = {n: (i["state_hash"], i["sessions"], i["keys"]) for n, i in infos.items()}
    check(len(set(hashes.values())) == 1, "replicas disagree: %s" % hashes)
    state_hash, sessions, keys = next(iter(hashes.values()))
    check(sessions == "4", "sessions %s, expected sessions_max = 4" % sessions)
    check(keys == "11", "INFO keys counts session records: %s" % keys)
    check(on_leader(cluster, "DBSIZE") == 11, "DBSIZE counts session records")
    # An evicted session's retry is applied again (the documented limit);
    # a recent one is still answered from the table.
    check(on_leader(cluster, "SESSION", 109, 1, "APPEND", "c109", "y") == "OK",
          "recent session retry")
    check(on_leader(cluster, "GET", "c109") == b"x", "recent retry applied twice")
    refused = on_leader(cluster, "SET", b"\xffblz\x00s" + b"\x00" * 8, "forged")
    check(isinstance(refused, RespError) and "reserved" in str(refused),
          "reserved keys must not be addressable: %r" % (refused,))
    print("sessions %s on every node, state hash %s; retries answered: %s" % (
        sessions, state_hash, infos[new]["session_retries_answered"]))


if __name__ == "__main__":
    run_test("session", body, nodes=3, **CONFIG)
