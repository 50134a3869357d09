"""Snapshot catch-up on a real 3-node cluster.

A follower is SIGSTOPped while the others write enough to compact their
logs past everything it has; after SIGCONT it cannot be sent entries any
more and catches up by a streamed snapshot of the leader's data pool
(INFO: snapshots_installed, snapshot_chunks_received / _sent). Then every
acknowledged write is on every node, state hashes agree, and nodes
restarted from their own snapshot plus log (the follower, then the leader
with SIGKILL) come back with the same state. Last, the state of a crash
between an install's commit point (the snapshot's meta renamed) and the
data pool's replacement: SIGKILL the follower and put back its data pool
as it was before the install (a copy taken while it was stopped; its log
stays: a crash never loses entries the node acknowledged). On restart it
finishes the install from its kept snapshot and catches up.

Run by //node:snapshot_test.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from testing import AckWriter, check, run_test, verify_acked, wait_until  # noqa: E402

# A small log pool that compacts early, and an election timeout that rides
# out a snapshot's pause on a loaded 2-core machine (node/README.md).
CONFIG = dict(log_pool_bytes="8M", data_pool_bytes="64M", election_timeout_ticks=50,
              heartbeat_interval_ticks=5,
              cluster_extra=["snapshot_log_percent = 25",
                             "snapshot_keep_entries = 8",
                             "snapshot_chunk_bytes = 256K"])
WRITE_BATCHES_MAX = 1500
# Entries the leader may have pipelined into the stopped follower's socket
# before it stopped (Raft's inflight_appends_max is 64 appends): compact
# well past them, or the follower catches up from its socket buffer.
COMPACT_PAST_ENTRIES = 300


def info_int(cluster, nid, key):
    return int(cluster.info(nid)[key])


def hashes_agree(cluster, nodes):
    infos = cluster.wait_caught_up(timeout=60)
    got = {nid: (infos[nid]["applied_index"], infos[nid]["state_hash"]) for nid in nodes}
    check(len(set(got.values())) == 1, "nodes disagree: %s" % got)
    return got[nodes[0]]


def body(cluster, args):
    cluster.start()
    leader = cluster.wait_leader()
    w = AckWriter(cluster, prefix="a", value_bytes=200)
    for _ in range(10):
        w.write_batch()
    follower = [n for n in sorted(cluster.nodes) if n != leader][0]
    wait_until("the follower to apply the first writes",
               lambda: info_int(cluster, follower, "applied_index") ==
               info_int(cluster, leader, "applied_index"))
    stopped_at = info_int(cluster, follower, "last_index")
    check(cluster.signal_node(follower, signal.SIGSTOP), "SIGSTOP failed")
    print("leader %d; SIGSTOPped follower %d at log index %d" % (leader, follower, stopped_at))

    # Write until every running node compacted past the stopped one.
    others = [n for n in sorted(cluster.nodes) if n != follower]
    batches = 0
    while True:
        check(batches < WRITE_BATCHES_MAX, "logs never compacted past index %d" % stopped_at)
        w.write_batch()
        batches += 1
        if batches % 20 == 0 and all(info_int(cluster, n, "first_index") > stopped_at + COMPACT_PAST_ENTRIES
                                     for n in others):
            break
    leader = cluster.wait_leader()
    print("%d keys acknowledged; leader %d first_index %d, snapshot_index %d" % (
        len(w.acked), leader, info_int(cluster, leader, "first_index"),
        info_int(cluster, leader, "snapshot_index")))
    li = cluster.info(leader)
    check(int(li["snapshots_created"]) >= 1, "the leader took no snapshot")
    print("leader: %s snapshots taken, last %s bytes in %s us, longest %s us" % (
        li["snapshots_created"], li["snapshot_bytes"], li["snapshot_create_us_last"],
        li["snapshot_create_us_max"]))

    # A crash image of the stopped follower's data pool, for the last part.
    old_pool = cluster.nodes[follower].data_pool
    shutil.copyfile(old_pool, old_pool + ".before_install")
    check(cluster.signal_node(follower, signal.SIGCONT), "SIGCONT failed")
    wait_until("the follower to install a snapshot",
               lambda: info_int(cluster, follower, "snapshots_installed") >= 1, timeout=60)
    hashes_agree(cluster, sorted(cluster.nodes))
    fi = cluster.info(follower)
    check(int(fi["snapshot_chunks_received"]) >= 1, "no chunks received: %s" % fi)
    sent = sum(info_int(cluster, n, "snapshot_chunks_sent") for n in others)
    check(sent >= int(fi["snapshot_chunks_received"]), "chunks sent %d < received" % sent)
    print("follower %d installed snapshot %s (%s bytes, %s chunks) in %s us" % (
        follower, fi["snapshot_index"], fi["snapshot_bytes"],
        fi["snapshot_chunks_received"], fi["snapshot_install_us_last"]))
    verify_acked(cluster, sorted(cluster.nodes), w.acked)

    # Writes after the install still replicate to it, through the log.
    for _ in range(5):
        w.write_batch()
    hashes_agree(cluster, sorted(cluster.nodes))

    # Restarts resume from the node's own snapshot plus its log.
    cluster.kill(follower, signal.SIGTERM)
    cluster.start_node(follower)
    cluster.wait_ports(nodes=[follower])
    leader = cluster.wait_leader()
    cluster.kill(leader, signal.SIGKILL)
    print("restarted follower %d; SIGKILLed leader %d" % (follower, leader))
    for _ in range(5):
        w.write_batch()
    cluster.start_node(leader)
    cluster.wait_ports(nodes=[leader])
    for _ in range(5):
        w.write_batch()
    applied, state_hash = hashes_agree(cluster, sorted(cluster.nodes))
    verify_acked(cluster, sorted(cluster.nodes), w.acked)
    print("%d acknowledged keys on all nodes; applied %s, state hash %s; writer errors %d" % (
        len(w.acked), applied, state_hash, w.errors))

    # A crash right after an install's commit point: the data pool is
    # still the old one.
    cluster.kill(follower, signal.SIGKILL)
    os.replace(old_pool + ".before_install", old_pool)
    cluster.start_node(follower)
    cluster.wait_ports(nodes=[follower])
    fi = cluster.info(follower)
    check(int(fi["applied_index"]) >= int(fi["snapshot_index"]),
          "restart did not finish the install: %s" % fi)
    for _ in range(5):
        w.write_batch()
    applied, state_hash = hashes_agree(cluster, sorted(cluster.nodes))
    verify_acked(cluster, sorted(cluster.nodes), w.acked)
    print("interrupted install finished on restart (snapshot %s); applied %s, hash %s" % (
        fi["snapshot_index"], applied, state_hash))

    # The pool inspector reads a stopped node's pools and snapshot
    # directory, verifies them and finds the snapshot INFO reported.
    snap_index = info_int(cluster, follower, "snapshot_index")
    cluster.kill(follower, signal.SIGTERM)
    out = subprocess.run([args.inspect, "--config=%s" % cluster.config_path,
                          "--id=%d" % follower, "--entries=2"],
                         capture_output=True, text=True, timeout=120)
    check(out.returncode == 0, "inspector exit %d:\n%s%s" % (out.returncode, out.stdout,
                                                             out.stderr))
    snap_part = out.stdout[out.stdout.find("== snapshot directory"):]
    check("== snapshot directory" in out.stdout and "status: OK\n" in snap_part and
          ("index: %d\n" % snap_index) in snap_part,
          "inspector did not verify snapshot %d:\n%s" % (snap_index, out.stdout))
    print("inspector verified node %d's pools and snapshot %d" % (follower, snap_index))


if __name__ == "__main__":
    run_test("snapshot", body, nodes=3,
             extra_args=[("--inspect", "the blizzard_inspect binary")], **CONFIG)
