"""Membership changes under client load on a real cluster.

The cluster file lists 4 nodes; `voters = 1,2,3` makes node 4 start as a
non-member. While a writer keeps writing (recording every acknowledged
write), node 4 is started, added as a learner (it catches up by snapshot:
the others' logs are compacted), promoted to voter, and the current leader (an old node) is removed: it
keeps leading until its removal commits, then hands over. Then every
acknowledged write is on every member, state hashes agree, and leadership
is transferred once more through CLUSTER TRANSFER.

Run by //node:membership_test.
"""

import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from testing import AckWriter, check, run_test, verify_acked, wait_until  # noqa: E402

CONFIG = dict(log_pool_bytes="8M", data_pool_bytes="64M", election_timeout_ticks=50,
              heartbeat_interval_ticks=5,
              cluster_extra=["voters = 1,2,3",
                             "snapshot_log_percent = 25",
                             "snapshot_keep_entries = 8",
                             "snapshot_chunk_bytes = 256K"])


def body(cluster, args):
    stop = threading.Event()
    thread = None
    try:
        cluster.start(nodes=[1, 2, 3])
        leader = cluster.wait_leader()
        m = cluster.members()
        check(m["voters"] == [1, 2, 3] and m["learners"] == [], "bootstrap membership %s" % m)
        w = AckWriter(cluster, prefix="m", value_bytes=200)
        # Enough that the logs are compacted before node 4 joins.
        while int(cluster.info(cluster.wait_leader())["first_index"]) <= 1:
            w.write_batch()
        thread = threading.Thread(target=w.run, args=(stop,), kwargs={"deadline_s": 150})
        thread.start()

        cluster.start_node(4)
        cluster.wait_ports(nodes=[4])
        check(cluster.info(4)["role"] == "follower", "node 4 is not waiting as a follower")
        check(cluster.members(4)["voters"] == [], "non-member node 4 knows voters before joining")
        print("%d keys acknowledged before node 4 joins (leader %d)" % (len(w.acked), leader))
        check(cluster.admin("ADDLEARNER", 4) == "OK", "ADDLEARNER")
        wait_until("node 4 to learn the membership",
                   lambda: 4 in cluster.members(4)["learners"], timeout=60)
        # PROMOTE is refused (retryable) until node 4 has caught up.
        check(cluster.admin("PROMOTE", 4, timeout=90) == "OK", "PROMOTE")
        check(cluster.members()["voters"] == [1, 2, 3, 4], "after PROMOTE: %s" % cluster.members())
        before_remove = len(w.acked)
        victim = cluster.wait_leader()
        members = sorted({1, 2, 3, 4} - {victim})
        check(cluster.admin("REMOVE", victim) == "OK", "REMOVE")
        wait_until("a leader among %s" % members,
                   lambda: cluster.leader() in members and
                   cluster.members()["voters"] == members, timeout=60)
        print("removed leader node %d; new leader %d" % (victim, cluster.leader()))
        # The writer keeps going under the new membership.
        wait_until("writes after the removal", lambda: len(w.acked) > before_remove + 2000,
                   timeout=60)
        stop.set()
        thread.join()
        thread = None
        cluster.kill(victim)  # Removed: it no longer belongs to the group.

        infos = cluster.wait_caught_up(timeout=60)
        hashes = {nid: infos[nid]["state_hash"] for nid in members}
        check(len(set(hashes.values())) == 1, "members disagree: %s" % hashes)
        check(int(infos[4]["snapshots_installed"]) >= 1, "node 4 did not join by snapshot")
        verify_acked(cluster, members, w.acked)
        print("%d acknowledged keys on members %s (writer errors %d); node 4 installed "
              "%s snapshot(s)" % (len(w.acked), members, w.errors,
                                  infos[4]["snapshots_installed"]))

        leader = cluster.wait_leader()
        target = [n for n in members if n != leader][0]
        check(cluster.admin("TRANSFER", target) == "OK", "TRANSFER")
        wait_until("leadership to move to node %d" % target,
                   lambda: cluster.leader() == target, timeout=30)
        w.write_batch()
        print("leadership transferred from node %d to node %d" % (leader, target))
    finally:
        stop.set()
        if thread is not None:
            thread.join()


if __name__ == "__main__":
    run_test("membership", body, nodes=4, **CONFIG)
