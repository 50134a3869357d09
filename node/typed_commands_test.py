"""The typed keyspace over RESP, differentially against a real redis-server.

A 3-node cluster and a private redis-server (7.x, Debian's) receive the same
seeded random sequence of string, list, set and sorted-set commands
(including wrong types, missing keys, counts, negative indices, score
bounds and refused options); every reply must be identical (SMEMBERS
compared as sets; errors for options Blizzard refuses are only checked to
be errors). Then: the followers reach the same state hash as the leader,
redis-cli (an independent client) reads a sorted set, and after a
full-cluster restart the data and state hash are unchanged. Seeded: a
failure prints the seed.
"""

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from testing import TestCluster, check  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_redis():
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="blizzard_typed_redis_")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir, "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    deadline = time.time() + 20
    while True:
        try:
            r.ping()
            return proc, r, workdir
        except redis.exceptions.ConnectionError:
            if time.time() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)


def reply_of(client, cmd):
    """A comparable form of the reply (errors as ('ERR', text))."""
    try:
        rep = client.execute_command(*cmd)
    except redis.exceptions.ResponseError as e:
        return ("ERR", str(e))
    if cmd[0].upper() == "SMEMBERS" and isinstance(rep, (list, set)):
        return ("SET", sorted(rep))
    if isinstance(rep, set):
        return ("SET", sorted(rep))
    return rep


SCORES = ["0", "1", "-1", "2.5", "-0.5", "10", "1e3", "+inf", "-inf", "3", "7"]


def random_command(rng):
    key = rng.choice(["s%d" % rng.randrange(3), "l%d" % rng.randrange(3),
                      "h%d" % rng.randrange(3), "z%d" % rng.randrange(3)])
    member = "m%d" % rng.randrange(8)
    idx = lambda: str(rng.randrange(-6, 7))  # noqa: E731
    kind = rng.randrange(24)
    if kind == 0:
        return ["SET", key, "v%d" % rng.randrange(100)]
    if kind == 1:
        return ["DEL", key] + ([member] if rng.random() < 0.3 else [])
    if kind == 2:
        return ["INCRBY", key, str(rng.randrange(-5, 6))]
    if kind == 3:
        return ["APPEND", key, "x"]
    if kind == 4:
        return [rng.choice(["LPUSH", "RPUSH"]), key] + \
            ["e%d" % rng.randrange(20) for _ in range(rng.randrange(1, 4))]
    if kind == 5:
        return [rng.choice(["LPOP", "RPOP"]), key] + \
            ([str(rng.randrange(0, 4))] if rng.random() < 0.4 else [])
    if kind == 6:
        return ["LRANGE", key, idx(), idx()]
    if kind == 7:
        return ["LINDEX", key, idx()]
    if kind == 8:
        return ["LLEN", key]
    if kind == 9:
        return ["SADD", key] + ["m%d" % rng.randrange(8) for _ in range(rng.randrange(1, 4))]
    if kind == 10:
        return ["SREM", key, member, "m%d" % rng.randrange(8)]
    if kind == 11:
        return [rng.choice(["SMEMBERS", "SCARD"]), key]
    if kind == 12:
        return ["SISMEMBER", key, member]
    if kind == 13:
        cmd = ["ZADD", key]
        for _ in range(rng.randrange(1, 4)):
            cmd += [rng.choice(SCORES), "m%d" % rng.randrange(8)]
        return cmd
    if kind == 14:
        return ["ZREM", key, member]
    if kind == 15:
        return ["ZSCORE", key, member]
    if kind == 16:
        return ["ZCARD", key]
    if kind == 17:
        return ["ZRANGE", key, idx(), idx()] + (["WITHSCORES"] if rng.random() < 0.5 else [])
    if kind == 18:
        lo = rng.choice(SCORES + ["(1", "(2.5", "(-inf"])
        hi = rng.choice(SCORES + ["(3", "(10", "(+inf"])
        cmd = ["ZRANGEBYSCORE", key, lo, hi]
        if rng.random() < 0.5:
            cmd.append("WITHSCORES")
        if rng.random() < 0.3:
            cmd += ["LIMIT", str(rng.randrange(0, 3)), str(rng.randrange(-1, 3))]
        return cmd
    if kind == 19:
        return [rng.choice(["ZPOPMIN", "ZPOPMAX"]), key] + \
            ([str(rng.randrange(0, 4))] if rng.random() < 0.5 else [])
    if kind == 20:
        return ["TYPE", key]
    if kind == 21:
        return ["EXISTS", key, "l0", "z0"]
    if kind == 22:
        return [rng.choice(["GET", "STRLEN"]), key]
    return ["MGET", key, "s0", "l0"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "little"))
    ap.add_argument("--commands", type=int, default=3000)
    args = ap.parse_args()
    print("seed=%d" % args.seed)
    rng = random.Random(args.seed)

    proc, ref, workdir = start_redis()
    cluster = TestCluster(args.binary, nodes=3, name="typed")
    ok = False
    try:
        cluster.start()
        leader = cluster.wait_leader()
        node = cluster.nodes[leader]
        b = redis.Redis(host=node.host, port=node.client_port, socket_timeout=10)

        # Documented examples first (redis.io command pages).
        fixed = [
            ["RPUSH", "mylist", "one", "two", "three", "four", "five"],
            ["LPOP", "mylist"], ["LPOP", "mylist", "2"], ["LRANGE", "mylist", "0", "-1"],
            ["ZADD", "myzset", "1", "one", "1", "uno", "2", "two", "3", "three"],
            ["ZRANGE", "myzset", "0", "-1", "WITHSCORES"], ["ZPOPMIN", "myzset"],
            ["ZPOPMAX", "myzset", "2"], ["ZRANGEBYSCORE", "myzset", "-inf", "+inf"],
            ["SADD", "myset", "Hello", "World", "World"], ["SCARD", "myset"],
            ["SET", "str", "v"], ["LPUSH", "str", "x"], ["TYPE", "mylist"],
            ["TYPE", "myzset"], ["TYPE", "myset"], ["TYPE", "str"], ["TYPE", "nokey"],
            ["LPOP", "nokey", "1"], ["ZPOPMIN", "nokey"], ["ZSCORE", "myzset", "uno"],
            ["DEL", "mylist", "myzset", "myset", "str"],
        ]
        compared = 0
        for cmd in fixed + [random_command(rng) for _ in range(args.commands)]:
            want = reply_of(ref, cmd)
            got = reply_of(b, cmd)
            check(got == want, "%s: blizzard %r, redis %r" % (cmd, got, want))
            compared += 1
        # Options Blizzard refuses: a clear error (Redis would accept them).
        for cmd in (["ZADD", "zz", "NX", "1", "a"], ["ZRANGE", "zz", "0", "-1", "REV"]):
            got = reply_of(b, cmd)
            check(isinstance(got, tuple) and got[0] == "ERR" and "not supported" in got[1],
                  "%s: %r" % (cmd, got))
        # WRONGTYPE's exact text.
        b.rpush("wt", "x")
        try:
            b.get("wt")
            check(False, "GET of a list did not fail")
        except redis.exceptions.ResponseError as e:
            check(str(e) == "WRONGTYPE Operation against a key holding the wrong kind of value",
                  "WRONGTYPE text: %s" % e)

        # Replicas agree on the state hash (it covers every type).
        infos = cluster.wait_caught_up()
        hashes = {nid: i["state_hash"] for nid, i in infos.items()}
        check(len(set(hashes.values())) == 1, "state hashes differ: %s" % hashes)

        # redis-cli as an independent client.
        b.zadd("cli", {"a": 1.5, "b": -2})
        out = subprocess.run(["redis-cli", "-h", node.host, "-p", str(node.client_port),
                              "ZRANGE", "cli", "0", "-1", "WITHSCORES"],
                             capture_output=True, text=True, timeout=10).stdout.split()
        check(out == ["b", "-2", "a", "1.5"], "redis-cli ZRANGE: %r" % out)

        # Full-cluster restart: content and hash unchanged.
        keys = sorted(k.decode() for k in ref.keys("*"))
        before = {k: reply_of(b, ["TYPE", k]) for k in keys}
        infos = cluster.wait_caught_up()
        state_hash = infos[leader]["state_hash"]
        check(all(i["state_hash"] == state_hash for i in infos.values()),
              "state hashes differ after the redis-cli step")
        ref.zadd("cli", {"a": 1.5, "b": -2})
        keys.append("cli")
        before["cli"] = reply_of(b, ["TYPE", "cli"])
        cluster.stop()
        cluster.start()
        leader = cluster.wait_leader()
        infos = cluster.wait_caught_up()
        check(all(i["state_hash"] == state_hash for i in infos.values() if
                  int(i["applied_index"]) > 0), "state hash changed across restart")
        node = cluster.nodes[leader]
        b = redis.Redis(host=node.host, port=node.client_port, socket_timeout=10)
        for k in keys:
            check(reply_of(b, ["TYPE", k]) == before[k], "type of %s changed" % k)
            t = before[k].decode() if isinstance(before[k], bytes) else str(before[k])
            cmd = {"string": ["GET", k], "list": ["LRANGE", k, "0", "-1"],
                   "set": ["SMEMBERS", k], "zset": ["ZRANGE", k, "0", "-1", "WITHSCORES"]}[t]
            check(reply_of(b, cmd) == reply_of(ref, cmd), "%s differs after restart" % k)
        print("%d commands identical to redis-server %s; %d keys; state hash %s on 3 nodes, "
              "unchanged by a full restart" % (compared, ref.info()["redis_version"], len(keys),
                                               state_hash))
        ok = True
    finally:
        if not ok:
            print("seed=%d" % args.seed)
            cluster.dump_logs()
        cluster.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
