"""Malformed client and peer input never crashes a node or touches its data.

Random bytes, truncated frames, a 10 GB declared bulk length, an absurd
multibulk count, unbalanced inline quotes, garbage on the peer port: each
gets an error or a closed connection; afterwards the node still answers,
its memory did not balloon, and its data (keys, values, state hash) is
intact. Seeded: a failure prints the seed.
"""

import argparse
import os
import random
import socket
import sys

import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from testing import TestCluster, check  # noqa: E402


def exchange(host, port, payload, read_timeout=0.5):
    """Sends payload, returns (reply bytes, closed_by_server)."""
    s = socket.create_connection((host, port), timeout=2)
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        s.close()
        return b"", True
    s.settimeout(read_timeout)
    data = b""
    closed = False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
    except socket.timeout:
        pass
    except OSError:
        closed = True
    s.close()
    return data, closed


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "little"))
    args = ap.parse_args()
    print("seed=%d" % args.seed)
    rng = random.Random(args.seed)

    cluster = TestCluster(args.binary, nodes=1, name="malformed")
    ok = False
    try:
        cluster.start()
        cluster.wait_leader()
        node = cluster.nodes[1]
        host, port = node.host, node.client_port
        r = redis.Redis(host=host, port=port, socket_timeout=10)
        pipe = r.pipeline(transaction=False)
        for i in range(1000):
            pipe.set("key%04d" % i, "value%04d" % i)
        check(all(x is True for x in pipe.execute()), "setup writes failed")
        before = cluster.info(1)
        pid = cluster.pid(1)
        rss_before = rss_kib(pid)

        # 1. A 10 GB declared bulk length: an error at once, nothing allocated.
        reply, closed = exchange(host, port, b"*2\r\n$3\r\nGET\r\n$10737418240\r\n")
        check(reply.startswith(b"-ERR Protocol error"), "10 GB bulk: got %r" % reply)
        check(closed, "10 GB bulk: connection left open")
        # 2. An absurd multibulk count.
        reply, closed = exchange(host, port, b"*2147483647\r\n")
        check(reply.startswith(b"-ERR Protocol error") and closed, "huge multibulk: %r" % reply)
        reply, _ = exchange(host, port, b"*-5\r\n")  # Redis ignores *-N; must not crash.
        # 3. Bad bulk header, bad multibulk length, unbalanced quotes.
        for bad in (b"*1\r\n:5\r\n", b"*x\r\n", b"*1\r\n$-7\r\n",
                    b"SET \"unbalanced v\r\n", b"*2\r\n$3\r\nGET\r\n$3\r\nabcdef\r\n"):
            reply, closed = exchange(host, port, bad)
            check(reply.startswith(b"-ERR") and closed, "%r: got %r" % (bad, reply))
        # 4. Truncated frames: the server waits for more, then sees EOF.
        valid = b"*3\r\n$3\r\nSET\r\n$7\r\ntrunc00\r\n$9\r\nCLOBBERED\r\n"
        for cut in range(1, len(valid)):
            exchange(host, port, valid[:cut], 0.02)
        # 5. Random bytes and random mutations of valid frames.
        for i in range(300):
            if i % 2:
                payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
            else:
                frame = bytearray(b"*2\r\n$3\r\nGET\r\n$7\r\nkey0001\r\n" * 3)
                for _ in range(rng.randrange(1, 6)):
                    frame[rng.randrange(len(frame))] = rng.randrange(256)
                payload = bytes(frame)
            # Never let a mutation turn into a write of the test's keys.
            if b"SET" in payload.upper() or b"DEL" in payload.upper() or \
                    b"APPEND" in payload.upper() or b"INCR" in payload.upper() or \
                    b"DECR" in payload.upper() or b"MSET" in payload.upper():
                continue
            exchange(host, port, payload, 0.02)
        # 6. Garbage on the peer port (forged peer traffic).
        peer_port = port + 100
        for i in range(50):
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000)))
            try:
                exchange(host, peer_port, payload, 0.02)
            except OSError:
                pass

        # The node is alive, small, and its data intact.
        check(cluster.pid(1) == pid, "the node died")
        check(r.ping(), "PING failed")
        after = cluster.info(1)
        for field in ("keys", "state_hash", "applied_index"):
            check(before[field] == after[field],
                  "%s changed: %s -> %s" % (field, before[field], after[field]))
        values = r.mget(["key%04d" % i for i in range(1000)])
        check(values == [("value%04d" % i).encode() for i in range(1000)], "values changed")
        rss_after = rss_kib(pid)
        check(rss_after < rss_before + 64 * 1024,
              "RSS grew from %d KiB to %d KiB" % (rss_before, rss_after))
        print("node alive, %s keys, state hash %s unchanged, RSS %d -> %d KiB" % (
            after["keys"], after["state_hash"], rss_before, rss_after))
        ok = True
    finally:
        if not ok:
            print("seed=%d" % args.seed)
            cluster.dump_logs()
        cluster.close()
    print("PASS")


if __name__ == "__main__":
    main()
