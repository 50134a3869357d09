"""Physical replication end to end, against logical replication.

The same seeded command mix (strings, lists, sets, sorted sets, reads and
writes, wrong types) goes to a physical 3-node cluster and then to a logical
3-node cluster, in three phases: mixed commands; 2000 SETs during which the
leader is SIGKILLed (and later restarted); mixed commands again. Then a
fourth phase of mixed commands where about a third of the writes are
wrapped in SESSION (5 clients), with retries of a client's last request
and stale seqs: the replies (the original reply for a retry, array
replies included) must be the same in both modes, and so must the content
and the number of sessions. (The state hashes of the two clusters are
compared before that phase: a session record holds the index of the entry
that wrote it, and the two clusters' logs differ in shape, e.g. their
election no-ops, so their records differ in that field. Replicas of one
cluster must still agree.) Checks:
every reply is the same in both clusters; within each cluster all replicas
reach the same state hash; both clusters end with the same logical content
(read back key by key on every node) and the same state hash; no
acknowledged SET is lost; INFO names the mode and its byte counters. Seeded:
a failure prints the seed.
"""

import argparse
import os
import random
import signal
import sys
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from testing import TestCluster, check  # noqa: E402
from typed_commands_test import random_command, reply_of  # noqa: E402
from cluster_test import Writer  # noqa: E402

KEYS = ["s%d" % i for i in range(3)] + ["l%d" % i for i in range(3)] + \
    ["h%d" % i for i in range(3)] + ["z%d" % i for i in range(3)]
# Commands that SESSION wraps (writes: their retries are answered from the
# session table).
SESSION_WRITES = {"SET", "DEL", "INCRBY", "APPEND", "LPUSH", "RPUSH", "LPOP", "RPOP", "SADD",
                  "SREM", "ZADD", "ZREM", "ZPOPMIN", "ZPOPMAX"}
COUNTERS = ("peer_bytes_sent", "log_bytes_persisted", "data_bytes_written",
            "entries_applied", "ops_applied")


def leader_client(cluster, exclude=()):
    nid = cluster.wait_leader(timeout=30, exclude=exclude)
    n = cluster.nodes[nid]
    return nid, redis.Redis(host=n.host, port=n.client_port, socket_timeout=10)


def run_commands(client, commands):
    return [reply_of(client, cmd) for cmd in commands]


def content_of(client):
    """Every known key's type and value, through reads."""
    out = {}
    for k in KEYS:
        t = client.type(k).decode()
        if t == "string":
            out[k] = (t, client.get(k))
        elif t == "list":
            out[k] = (t, client.lrange(k, 0, -1))
        elif t == "set":
            out[k] = (t, sorted(client.smembers(k)))
        elif t == "zset":
            out[k] = (t, client.zrange(k, 0, -1, withscores=True))
        else:
            out[k] = (t, None)
    return out


def with_sessions(rng, commands):
    """Wraps about a third of the writes in SESSION (clients 1-5, seqs 1, 2,
    ...); after some, re-sends a client's last session request (a retry:
    the original reply, not applied again) and sometimes an older seq (the
    stale-sequence error)."""
    out = []
    last = {}  # client -> (seq, wrapped command)
    for cmd in commands:
        r = rng.random()
        if r < 0.35 and cmd[0].upper() in SESSION_WRITES:
            client = rng.randrange(1, 6)
            seq = last.get(client, (0, None))[0] + 1
            wrapped = ["SESSION", str(client), str(seq)] + cmd
            last[client] = (seq, wrapped)
            out.append(wrapped)
        else:
            out.append(cmd)
        if r < 0.12 and last:
            client = rng.choice(sorted(last))
            seq, wrapped = last[client]
            out.append(wrapped)
            if seq > 1 and rng.random() < 0.3:
                out.append(["SESSION", str(client), str(seq - 1)] + wrapped[3:])
    return out


def run_mode(binary, mode, commands_a, commands_c, commands_s):
    cluster = TestCluster(binary, nodes=3, name="phys_" + mode)
    ok = False
    try:
        cluster.start()
        leader, client = leader_client(cluster)
        info = cluster.info(leader)
        check(info.get("replication_mode") == mode,
              "%s: INFO replication_mode is %r" % (mode, info.get("replication_mode")))
        replies = run_commands(client, commands_a)

        # Failover under SETs: every acknowledged one must survive.
        w = Writer(cluster)
        w.write(["f%05d" % i for i in range(1000)])
        cluster.kill(leader, signal.SIGKILL)
        w.write(["f%05d" % i for i in range(1000, 2000)])
        check(len(w.acked) == 2000, "%s: not all SETs acknowledged" % mode)
        cluster.start_node(leader)
        cluster.wait_ports(nodes=[leader])
        cluster.wait_caught_up(timeout=90)

        _, client = leader_client(cluster)
        replies += run_commands(client, commands_c)
        infos = cluster.wait_caught_up(timeout=90)
        hashes = {nid: i["state_hash"] for nid, i in infos.items()}
        check(len(set(hashes.values())) == 1, "%s: state hashes differ: %s" % (mode, hashes))

        # Client sessions: replies compared across modes by the caller.
        replies += run_commands(client, commands_s)
        infos = cluster.wait_caught_up(timeout=90)
        session_hashes = {nid: i["state_hash"] for nid, i in infos.items()}
        check(len(set(session_hashes.values())) == 1,
              "%s: state hashes differ after the session phase: %s" % (mode, session_hashes))
        sessions = {i["sessions"] for i in infos.values()}
        check(len(sessions) == 1, "%s: session counts differ: %s" % (mode, sessions))

        contents = {}
        for nid in sorted(cluster.nodes):
            n = cluster.nodes[nid]
            c = redis.Redis(host=n.host, port=n.client_port, socket_timeout=10)
            c.execute_command("READONLY")
            contents[nid] = content_of(c)
            keys = sorted(w.acked)
            got = c.mget(keys)
            lost = sum(1 for k, v in zip(keys, got) if v != w.acked[k])
            check(lost == 0, "%s: node %d lost %d acknowledged SETs" % (mode, nid, lost))
            c.close()
        first = contents[min(contents)]
        for nid, cont in contents.items():
            check(cont == first, "%s: node %d's content differs" % (mode, nid))
        counters = {}
        for nid, i in infos.items():
            for name in COUNTERS:
                check(name in i, "%s: INFO lacks %s" % (mode, name))
            counters[nid] = {name: int(i[name]) for name in COUNTERS}
        ok = True
        return replies, (first, sessions.pop()), next(iter(hashes.values())), counters
    finally:
        if not ok:
            cluster.dump_logs()
        cluster.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--physical", required=True, help="the blizzard_tcp_physical binary")
    ap.add_argument("--logical", required=True, help="the blizzard_tcp_logical binary")
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--commands", type=int, default=1500)
    args = ap.parse_args()
    print("seed=%d" % args.seed)
    rng = random.Random(args.seed)
    commands_a = [random_command(rng) for _ in range(args.commands)]
    commands_c = [random_command(rng) for _ in range(args.commands)]
    commands_s = with_sessions(rng, [random_command(rng) for _ in range(args.commands)])
    print("session phase: %d commands, %d in SESSION" % (
        len(commands_s), sum(1 for c in commands_s if c[0] == "SESSION")))

    t0 = time.time()
    p_replies, p_content, p_hash, p_counters = run_mode(args.physical, "physical",
                                                        commands_a, commands_c, commands_s)
    print("physical: %d replies, state hash %s (%.1fs)" % (len(p_replies), p_hash,
                                                          time.time() - t0))
    t0 = time.time()
    l_replies, l_content, l_hash, l_counters = run_mode(args.logical, "logical",
                                                        commands_a, commands_c, commands_s)
    print("logical: %d replies, state hash %s (%.1fs)" % (len(l_replies), l_hash,
                                                         time.time() - t0))
    for i, (p, l) in enumerate(zip(p_replies, l_replies)):
        cmd = (commands_a + commands_c + commands_s)[i]
        check(p == l, "seed=%d: reply %d to %s: physical %r, logical %r" % (
            args.seed, i, cmd, p, l))
    check(p_content == l_content, "seed=%d: logical content differs:\nphysical %r\nlogical %r" % (
        args.seed, p_content, l_content))
    check(p_hash == l_hash, "seed=%d: state hash physical %s, logical %s" % (
        args.seed, p_hash, l_hash))
    for label, counters in (("physical", p_counters), ("logical", l_counters)):
        for nid, c in sorted(counters.items()):
            print("%s node %d: %s" % (label, nid, " ".join(
                "%s=%d" % (k, v) for k, v in sorted(c.items()))))
    print("PASS")


if __name__ == "__main__":
    main()
