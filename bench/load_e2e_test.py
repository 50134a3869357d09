"""blizzard_load against real Blizzard nodes.

A 1-node cluster: set and getset run with no errors, report node counters
and CPU per op, append CSV rows; zadd either works (once the server has
sorted sets) or fails with a clear "unknown command" report, never a crash.
A 3-node cluster: load aimed at a follower follows -MOVED to the leader,
and peer bytes per op are reported.

Run by //bench:load_e2e_test (Debian's /usr/bin/python3).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import start_cluster  # noqa: E402
from testing import TestCluster, check  # noqa: E402

RUN_S = "2"


def run_load(load, args, expect_rc=0):
    cmd = [load, "--json", "--duration_s=" + RUN_S, "--warmup_s=0.5", "--connections=8",
           "--pipeline=4", "--keys=1000"] + args
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=60)
    print("$ %s\n%s%s" % (" ".join(cmd), proc.stdout, proc.stderr))
    check(expect_rc is None or proc.returncode == expect_rc,
          "exit code %d, expected %s" % (proc.returncode, expect_rc))
    lines = proc.stdout.strip().splitlines()
    check(lines and lines[-1].startswith("{"), "no JSON line at the end of stdout")
    return json.loads(lines[-1]), proc


def check_clean(result, workload):
    check(result["workload"] == workload, "workload %r" % result["workload"])
    check(result["ops"] > 0, "no operations")
    check(result["errors"] == 0, "errors: %s" % result["error_kinds"])
    check(result["lost"] == 0, "lost requests")
    lat = result["latency"]
    check(0 < lat["p50_us"] <= lat["p99_us"] <= lat["p999_us"] <= lat["max_us"],
          "latency percentiles out of order: %s" % lat)
    check(result["failure"] == "" and result["abort_reason"] == "", "run failed")


def single_node(load, binary, csv_path):
    cluster = TestCluster(binary, nodes=1, name="load1")
    try:
        start_cluster(cluster)
        config = "--config=" + cluster.config_path
        r, _ = run_load(load, [config, "--workload=set", "--value_bytes=128",
                               "--csv_out=" + csv_path, "--label=unreplicated"])
        check_clean(r, "set")
        check(r["replication_mode"] != "n/a" and r["nodes_sampled"] == 1, "INFO not read")
        check(r["log_bytes_persisted_per_op"] is not None and
              r["log_bytes_persisted_per_op"] > 128, "log bytes per op %r" %
              r["log_bytes_persisted_per_op"])
        check(r["data_bytes_written_per_op"] is not None, "data bytes per op missing")
        check(r["node_cpu_us_per_op"] is not None and r["node_cpu_us_per_op"] > 0,
              "node CPU per op missing")
        check(r["peer_bytes_sent_per_op"] == 0, "one node sent peer bytes")

        r, _ = run_load(load, [config, "--workload=getset", "--distribution=zipf",
                               "--csv_out=" + csv_path, "--label=unreplicated"])
        check_clean(r, "getset")
        check(set(r["latency_by_op"]) == {"GET", "SET"}, "per-op latency: %s" %
              list(r["latency_by_op"]))

        # Sorted sets may not exist yet: either clean, or a clear failure.
        r, proc = run_load(load, [config, "--workload=zadd"], expect_rc=None)
        if proc.returncode == 0:
            check_clean(r, "zadd")
        else:
            check(proc.returncode == 1, "zadd exit code %d" % proc.returncode)
            check("unknown command" in r["failure"], "unclear failure: %r" % r["failure"])
            check(r["error_kinds"].get("ERR unknown command", 0) > 0,
                  "error kinds: %s" % r["error_kinds"])
            check("FAILED" in proc.stderr, "no FAILED line on stderr")

        with open(csv_path) as f:
            rows = f.read().strip().splitlines()
        check(len(rows) == 3, "CSV has %d lines, expected a header and 2 rows" % len(rows))
        check(rows[0].startswith("label,"), "CSV header missing")
        check(all(row.startswith("unreplicated,") for row in rows[1:]), "CSV rows: %s" % rows)
    except Exception:
        cluster.dump_logs()
        raise
    finally:
        cluster.close()


def three_nodes(load, binary):
    cluster = TestCluster(binary, nodes=3, name="load3")
    try:
        start_cluster(cluster)
        leader = cluster.wait_leader()
        follower = next(n for n in sorted(cluster.nodes) if n != leader)
        # A follower answers CLUSTERDOWN until the leader's first append
        # reaches it; on a loaded machine that can take a while after the
        # leader is elected. The test is about -MOVED, so wait for it.
        deadline = time.time() + 30
        while cluster.info(follower).get("leader_id") != str(leader):
            check(time.time() < deadline, "follower %d never learned leader %d" %
                  (follower, leader))
            time.sleep(0.05)
        port = cluster.nodes[follower].client_port
        r, _ = run_load(load, ["--port=%d" % port, "--workload=set"])
        check_clean(r, "set")
        check(r["redirects"] >= 8, "expected a redirect per connection, got %d" %
              r["redirects"])
        r, _ = run_load(load, ["--config=" + cluster.config_path, "--workload=getset",
                               "--value_bytes=1K"])
        check_clean(r, "getset")
        check(r["nodes_sampled"] == 3, "INFO from %d nodes" % r["nodes_sampled"])
        check(r["peer_bytes_sent_per_op"] is not None and r["peer_bytes_sent_per_op"] > 0,
              "no peer bytes per op in a 3-node cluster")
    except Exception:
        cluster.dump_logs()
        raise
    finally:
        cluster.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--load", required=True)
    ap.add_argument("--binary", required=True)
    args = ap.parse_args()
    load = os.path.abspath(args.load)
    binary = os.path.abspath(args.binary)
    tmp = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp(prefix="blizzard_load_")
    single_node(load, binary, os.path.join(tmp, "runs.csv"))
    three_nodes(load, binary)
    print("PASS")


if __name__ == "__main__":
    main()
