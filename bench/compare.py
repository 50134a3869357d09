#!/usr/bin/python3
"""Runs blizzard_load against each replication mode and compares them.

Normally started by bench/compare.sh (which builds the binaries). For every
mode (unreplicated = a 1-node cluster, logical = 3 nodes of
blizzard_tcp_logical, physical = 3 nodes of blizzard_tcp_physical when it
exists; logical-3-dpdk / physical-3-dpdk only when --modes names them: root,
nodes in network namespaces, see transport_compare.sh) and every value size, it starts a private cluster (free loopback
ports, pools in its own /dev/shm directory), runs each workload for a fixed
time, stops the cluster and removes its pools. Writes <out>/compare.csv,
<out>/throughput.png, <out>/latency_p99.png, <out>/bytes_per_op.png and
prints a table. Only processes it started are ever signalled.

Standard library + gnuplot only (Debian's /usr/bin/python3).
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import testing  # noqa: E402

# (mode, node variant, nodes)
MODES = [
    ("unreplicated", "blizzard_tcp_logical", 1),
    ("logical-3", "blizzard_tcp_logical", 3),
    ("physical-3", "blizzard_tcp_physical", 3),
    ("logical-3-dpdk", "blizzard_dpdk_logical", 3),
    ("physical-3-dpdk", "blizzard_dpdk_physical", 3),
    ("logical-3-tcpns", "blizzard_tcp_logical", 3),
]
# DPDK variants run their nodes in network namespaces (root; the launcher's
# netns mode) and only when --modes names them (bench/transport_compare.sh).
# logical-3-tcpns: TCP nodes in the same namespaces, their peer traffic over
# the same veths and bridge: DPDK's like-for-like baseline.
OPT_IN_MODES = {"logical-3-dpdk", "physical-3-dpdk", "logical-3-tcpns"}
NETNS_MODES = {"logical-3-dpdk", "physical-3-dpdk", "logical-3-tcpns"}

WORKLOADS = ["set", "getset", "zadd", "list", "sadd"]
FIELDS = ["mode", "variant", "nodes", "workload", "value_bytes", "status", "ops",
          "ops_per_s", "lat_p50_us", "lat_p99_us", "lat_p999_us", "lat_max_us", "errors",
          "peer_bytes_per_op", "log_bytes_per_op", "data_bytes_per_op",
          "ops_per_entry", "node_cpu_us_per_op", "client_cpu_us_per_op", "runs",
          "ops_per_s_min", "ops_per_s_max", "duration_s", "connections", "pipeline", "keys",
          "distribution", "loadavg_1m", "note"]
INFO_COUNTERS = "peer_bytes_sent,log_bytes_persisted,data_bytes_written,entries_applied"


def loadavg():
    """The 1-minute load average: other work on the machine skews the numbers."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pool_sizes(value_bytes, nodes):
    """Log and data pool sizes. The log compacts (snapshot_log_percent), but a
    large log spares the runs the snapshot copies, which would otherwise be
    part of what is measured; the data pool holds every key and member of the
    runs. ZADD and SADD add new members for as long as they run: 256 MiB
    filled up (OOM replies) when an unreplicated node ran three 4-second ZADD
    128 B runs at ~70k ops/s, and 1 GiB when one ran ZADD 1 KiB at ~150k
    ops/s (each insert stores the member twice: ~2.5 KB). A single node
    outruns a 3-node cluster about 3x on two cores, so it gets 4 GiB pools
    (a 1 GiB log reached its compaction threshold within the 1 KiB runs and
    the snapshot copies showed up as 3x swings), a cluster's nodes a 1 GiB
    data pool and a 256 MiB or 1 GiB log: at most 8 and 6 GiB of /dev/shm."""
    if nodes == 1:
        return ("4G" if value_bytes >= 512 else "1G"), "4G"
    return ("1G" if value_bytes >= 512 else "256M"), "1G"


def run_one(args, binary_load, cluster, mode, variant, nodes, workload, value_bytes, seed):
    cmd = [binary_load, "--config=" + cluster.config_path, "--json", "--progress=false",
           "--workload=" + workload, "--value_bytes=%d" % value_bytes,
           "--duration_s=%g" % args.duration_s, "--warmup_s=%g" % args.warmup_s,
           "--connections=%d" % args.connections, "--pipeline=%d" % args.pipeline,
           "--keys=%d" % args.keys, "--distribution=" + args.distribution,
           "--zipf_s=%g" % args.zipf_s, "--seed=%d" % seed,
           "--max_error_pct=%g" % args.max_error_pct, "--label=" + mode,
           "--info_counters=" + INFO_COUNTERS]
    if cluster.netns is not None:
        cmd.append("--local_nodes")  # Namespaced nodes: not loopback, still local.
    row = {"mode": mode, "variant": variant, "nodes": nodes, "workload": workload,
           "value_bytes": value_bytes, "duration_s": args.duration_s, "loadavg_1m": loadavg(),
           "connections": args.connections, "pipeline": args.pipeline, "keys": args.keys,
           "distribution": args.distribution}
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=args.duration_s + args.warmup_s + 60)
    except subprocess.TimeoutExpired:
        row.update(status="failed", note="blizzard_load timed out")
        return row
    lines = proc.stdout.strip().splitlines()
    result = None
    if lines and lines[-1].startswith("{"):
        result = json.loads(lines[-1])
    if result is None:
        row.update(status="failed", note="no JSON (exit %d): %s" % (
            proc.returncode, proc.stderr.strip()[-300:]))
        return row
    lat = result["latency"]
    row.update(ops=result["ops"], ops_per_s=round(result["ops_per_s"]),
               lat_p50_us=lat["p50_us"], lat_p99_us=lat["p99_us"],
               lat_p999_us=lat["p999_us"], lat_max_us=lat["max_us"],
               errors=result["errors"],
               peer_bytes_per_op=result.get("peer_bytes_sent_per_op"),
               log_bytes_per_op=result.get("log_bytes_persisted_per_op"),
               data_bytes_per_op=result.get("data_bytes_written_per_op"),
               node_cpu_us_per_op=result.get("node_cpu_us_per_op"),
               # Every node applies every entry: ops per Raft entry (the
               # leader's batching) is nodes / (entries applied per op).
               ops_per_entry=(round(nodes / result["entries_applied_per_op"], 1)
                              if result.get("entries_applied_per_op") else None),
               client_cpu_us_per_op=result.get("client_cpu_us_per_op"))
    dead = [n for n in sorted(cluster.nodes) if cluster.pid(n) is None]
    if proc.returncode == 0 and not dead:
        row.update(status="ok", note="")
    elif "unknown command" in result.get("failure", ""):
        row.update(status="unsupported", note=result["failure"])
    else:
        note = result.get("failure") or result.get("abort_reason") or "exit %d" % proc.returncode
        if dead:
            note += "; node(s) %s died: %s" % (dead, cluster.tail_log(dead[0], 1).strip())
        row.update(status="failed", note=note)
    return row


def run_repeated(args, load, cluster, mode, variant, nodes, workload, value_bytes):
    """Runs a workload --repeat times; returns the run with the median
    throughput, with the spread of all runs (the machine is shared: the
    spread says how much to trust a difference). Repeat i uses seed
    --seed + i, the same in every mode: on one cluster a repeat with the
    same seed would resend the previous run's ZADDs, which are then no-ops
    (same members, same scores)."""
    rows = []
    for i in range(args.repeat):
        row = run_one(args, load, cluster, mode, variant, nodes, workload, value_bytes,
                      args.seed + i)
        rows.append(row)
        if row["status"] != "ok":
            return row  # Unsupported or failed: repeating will not help.
    rows.sort(key=lambda r: r["ops_per_s"])
    median = dict(rows[len(rows) // 2])
    median.update(runs=len(rows), ops_per_s_min=rows[0]["ops_per_s"],
                  ops_per_s_max=rows[-1]["ops_per_s"])
    return median


def start_cluster(cluster):
    """Starts the nodes and waits for a leader. The launcher may take a node
    that was spawned a moment ago for dead: while exec() is in progress its
    /proc/<pid>/cmdline is empty, so the pid check fails and wait_ports
    gives up. One retry (start() keeps nodes that are running) absorbs it."""
    try:
        cluster.start()
    except RuntimeError as e:
        print("  (cluster start: %s; retrying once)" % str(e).splitlines()[0])
        time.sleep(0.5)
        cluster.start()
    cluster.wait_leader()


def fmt(v, spec):
    return "n/a" if v in (None, "") else format(v, spec)


def print_table(rows, modes):
    width = 52
    print("\n%-8s %6s  " % ("workload", "value") + "".join(
        "| %-*s" % (width, m) for m in modes))
    print("%-8s %6s  " % ("", "bytes") + "".join(
        "| %8s %7s %7s %7s %7s %7s " % ("ops/s", "p99 ms", "peer B", "log B", "data B",
                                         "cpu us")
        for _ in modes))
    keyed = {(r["mode"], r["workload"], r["value_bytes"]): r for r in rows}
    for workload in dict.fromkeys(r["workload"] for r in rows):
        for vs in dict.fromkeys(r["value_bytes"] for r in rows):
            cells = []
            for m in modes:
                r = keyed.get((m, workload, vs))
                if r is None:
                    cells.append("| %-*s" % (width, "-"))
                elif r["status"] != "ok":
                    cells.append("| %-*s" % (width, r["status"]))
                else:
                    cells.append("| %8s %7s %7s %7s %7s %7s " % (
                        fmt(r["ops_per_s"], ".0f"), fmt(r["lat_p99_us"] / 1000.0, ".2f"),
                        fmt(r["peer_bytes_per_op"], ".0f"), fmt(r["log_bytes_per_op"], ".0f"),
                        fmt(r["data_bytes_per_op"], ".0f"), fmt(r["node_cpu_us_per_op"], ".1f")))
            print("%-8s %6d  %s" % (workload, vs, "".join(cells)))


def plot(rows, modes, out_dir):
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        print("compare: nothing to plot (no successful run)")
        return
    order = {w: i for i, w in enumerate(WORKLOADS)}
    categories = sorted(set((r["workload"], r["value_bytes"]) for r in ok),
                        key=lambda c: (order.get(c[0], len(order)), c[0], c[1]))
    keyed = {(r["mode"], r["workload"], r["value_bytes"]): r for r in ok}
    tmp = tempfile.mkdtemp(prefix="blizzard_compare_plot_")
    try:
        def write_data(name, field, scale=1.0, log_scale=False):
            path = os.path.join(tmp, name + ".tsv")
            with open(path, "w") as f:
                for w, vs in categories:
                    vals = []
                    for m in modes:
                        r = keyed.get((m, w, vs))
                        v = None if r is None else r.get(field)
                        if log_scale and v is not None and v <= 0:
                            v = None  # Nothing to draw on a log axis.
                        vals.append("?" if v is None else "%g" % (v * scale))
                    f.write("%s/%dB\t%s\n" % (w, vs, "\t".join(vals)))
            return path

        def histogram(path, title, ylabel):
            series = ", ".join(
                "'%s' using %d%s title '%s'" % (path if i == 0 else "", i + 2,
                                                ":xtic(1)" if i == 0 else "", m)
                for i, m in enumerate(modes))
            return "\n".join([
                "set title '%s'" % title, "set ylabel '%s'" % ylabel,
                "plot %s" % series])

        common = "\n".join([
            "set style data histograms", "set style histogram clustered gap 1",
            "set style fill solid 0.85 border -1", "set boxwidth 0.9",
            "set datafile separator '\\t'", "set datafile missing '?'",
            "set xtics rotate by -30 scale 0", "set key top left", "set yrange [0:*]",
            "set grid ytics", "set bmargin 5"])
        loads = [r["loadavg_1m"] for r in ok if r.get("loadavg_1m") is not None]
        first = ok[0]
        setup = "%s conns x pipeline %s, %s keys %s, %ss/run; %d cores shared by client " \
            "and nodes, load avg %.0f-%.0f" % (
                first["connections"], first["pipeline"], first["keys"], first["distribution"],
                first["duration_s"], os.cpu_count() or 1, min(loads or [0]), max(loads or [0]))
        script = [
            "set terminal pngcairo size 1200,520 font 'sans,10'", common,
            "set output '%s'" % os.path.join(out_dir, "throughput.png"),
            histogram(write_data("tput", "ops_per_s"), "Throughput (" + setup + ")", "ops/s"),
            "set output '%s'" % os.path.join(out_dir, "latency_p99.png"),
            histogram(write_data("p99", "lat_p99_us", 1e-3), "p99 latency (" + setup + ")",
                      "ms"),
            "set terminal pngcairo size 1500,520 font 'sans,10'",
            "set output '%s'" % os.path.join(out_dir, "bytes_per_op.png"),
            "set multiplot layout 1,3",
            "set logscale y", "set yrange [1:*]",
            histogram(write_data("peer", "peer_bytes_per_op", log_scale=True),
                      "Bytes sent between nodes per op (all nodes)", "bytes (log scale)"),
            histogram(write_data("log", "log_bytes_per_op", log_scale=True),
                      "Raft log bytes persisted per op (all nodes)", "bytes (log scale)"),
            histogram(write_data("data", "data_bytes_per_op", log_scale=True),
                      "Data pool bytes written per op (all nodes)", "bytes (log scale)"),
            "unset multiplot",
        ]
        gp = os.path.join(tmp, "plots.gp")
        with open(gp, "w") as f:
            f.write("\n".join(script) + "\n")
        proc = subprocess.run(["gnuplot", gp], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            print("compare: gnuplot failed:\n" + proc.stdout)
        else:
            print("compare: plots in %s/{throughput,latency_p99,bytes_per_op}.png" % out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_rows(csv_path):
    """compare.csv back into rows (numbers as numbers, empty cells as None)."""
    rows = []
    with open(csv_path, newline="") as f:
        for raw in csv.DictReader(f):
            row = {}
            for k, v in raw.items():
                if v == "":
                    row[k] = None
                    continue
                try:
                    row[k] = int(v)
                except ValueError:
                    try:
                        row[k] = float(v)
                    except ValueError:
                        row[k] = v
            rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", help="bazel-bin (holds node/ and bench/)")
    ap.add_argument("--variants", help="node variants that exist, comma-separated")
    ap.add_argument("--modes", default="", help="subset of: " + ",".join(m[0] for m in MODES))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--value-sizes", default="16,128,1024")
    ap.add_argument("--duration-s", type=float, default=3.0)
    ap.add_argument("--warmup-s", type=float, default=1.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--pipeline", type=int, default=4)
    ap.add_argument("--keys", type=int, default=10000)
    ap.add_argument("--distribution", default="uniform", choices=["uniform", "zipf"])
    ap.add_argument("--zipf-s", type=float, default=0.99)
    ap.add_argument("--seed", type=int, default=1,
                    help="load seed of the first run of each cell; repeat i uses seed + i")
    ap.add_argument("--max-error-pct", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per cell; the median throughput run is reported")
    ap.add_argument("--fresh-cluster-per-run", action="store_true",
                    help="a new cluster for every workload (default: per mode and value size)")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--netns-mtu-bytes", type=int,
                    help="netns modes: mtu_bytes in the cluster file and on the veths "
                    "(default: 1500, the kernel's)")
    ap.add_argument("--netns-idle-spin-us", type=int,
                    help="netns modes: idle_spin_us in the cluster file (DPDK)")
    ap.add_argument("--netns-ack-delay-us", type=int,
                    help="netns modes: ack_delay_us in the cluster file (DPDK)")
    ap.add_argument("--mode-suffix", default="",
                    help="appended to the mode column of the results (e.g. -mtu9000), "
                    "to tell set-ups of one mode apart")
    ap.add_argument("--plot-only", metavar="CSV",
                    help="redraw the plots and the table from a compare.csv; run nothing")
    args = ap.parse_args()

    if args.plot_only:
        rows = read_rows(args.plot_only)
        mode_names = list(dict.fromkeys(r["mode"] for r in rows))
        print_table(rows, mode_names)
        plot(rows, mode_names, args.out_dir)
        return
    if not args.bin_dir or not args.variants:
        ap.error("--bin-dir and --variants are required (bench/compare.sh passes them)")

    variants = set(v for v in args.variants.split(",") if v)
    wanted = set(m for m in args.modes.split(",") if m)
    modes = []
    for mode, variant, nodes in MODES:
        if (wanted and mode not in wanted) or (not wanted and mode in OPT_IN_MODES):
            continue
        if variant not in variants:
            print("compare: skipping %s: //node:%s does not exist yet" % (mode, variant))
            continue
        modes.append((mode, variant, nodes))
    if not modes:
        sys.exit("compare: no mode to run")
    workloads = [w for w in args.workloads.split(",") if w]
    value_sizes = [int(v) for v in args.value_sizes.split(",") if v]
    load = os.path.join(args.bin_dir, "bench", "blizzard_load")
    for path in [load] + [os.path.join(args.bin_dir, "node", v) for _, v, _ in modes]:
        if not os.access(path, os.X_OK):
            sys.exit("compare: %s is missing: build it first (bench/compare.sh does)" % path)
    os.makedirs(args.out_dir, exist_ok=True)

    # Run directories (cluster files, node logs) live in a private temp dir,
    # removed at the end unless something failed.
    work = tempfile.mkdtemp(prefix="blizzard_compare_")
    os.environ["TEST_TMPDIR"] = work
    if args.repeat < 1:
        sys.exit("compare: --repeat must be >= 1")
    runs = len(modes) * len(value_sizes) * len(workloads) * args.repeat
    print("compare: %d runs of %gs (+%gs warm-up) each; node logs under %s" % (
        runs, args.duration_s, args.warmup_s, work))
    cpus = os.cpu_count() or 1
    if (loadavg() or 0) > cpus / 2:
        print("compare: WARNING: load average %.1f on %d CPUs: other work on this machine "
              "will skew throughput and latency (bytes per op are not affected)" % (
                  loadavg(), cpus))
    rows = []
    failed = False
    start = time.time()
    for mode, variant, nodes in modes:
        binary = os.path.join(args.bin_dir, "node", variant)
        for vs in value_sizes:
            log_bytes, data_bytes = pool_sizes(vs, nodes)
            groups = [[w] for w in workloads] if args.fresh_cluster_per_run else [workloads]
            for group in groups:
                name = "%s_%d_%s" % (mode, vs, group[0] if len(group) == 1 else "all")
                netns = mode in NETNS_MODES
                netns_args = {}
                if netns:
                    netns_args = dict(mtu_bytes=args.netns_mtu_bytes,
                                      idle_spin_us=args.netns_idle_spin_us,
                                      ack_delay_us=args.netns_ack_delay_us)
                cluster = testing.TestCluster(binary, nodes=nodes, name=name,
                                              netns=netns,
                                              log_pool_bytes=log_bytes,
                                              data_pool_bytes=data_bytes, **netns_args)
                try:
                    start_cluster(cluster)
                    for w in group:
                        row = run_repeated(args, load, cluster, mode, variant, nodes, w, vs)
                        rows.append(row)
                        failed |= row["status"] == "failed"
                        spread = ""
                        if row.get("runs", 1) > 1:
                            spread = "(%d..%d)" % (row["ops_per_s_min"], row["ops_per_s_max"])
                        print("  %-12s %-7s %5d B  %-11s %9s ops/s %-15s p99 %8s ms  %s" % (
                            mode, w, vs, row["status"], fmt(row.get("ops_per_s"), ".0f"),
                            spread,
                            fmt(row.get("lat_p99_us") and row["lat_p99_us"] / 1000, ".2f"),
                            row["note"][:100]))
                        if any(cluster.pid(n) is None for n in cluster.nodes):
                            break  # A node died: the rest of the group would fail too.
                except RuntimeError as e:
                    failed = True
                    print("  %-12s %5d B  cluster failed: %s" % (mode, vs, e))
                    for w in group:
                        rows.append({"mode": mode, "variant": variant, "nodes": nodes,
                                     "workload": w, "value_bytes": vs, "status": "failed",
                                     "note": "cluster: %s" % str(e).splitlines()[0]})
                finally:
                    cluster.close()

    if args.mode_suffix:
        for r in rows:
            r["mode"] += args.mode_suffix
        modes = [(m + args.mode_suffix, v, n) for m, v, n in modes]
    csv_path = os.path.join(args.out_dir, "compare.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in FIELDS})
    mode_names = [m for m, _, _ in modes]
    print_table(rows, mode_names)
    print("\nper op, summed over the nodes: peer B = bytes sent between nodes, log B = Raft "
          "log bytes persisted, data B = data pool bytes written, cpu us = node CPU time")
    print("compare: %d cells in %.0fs; results in %s" % (len(rows), time.time() - start,
                                                         csv_path))
    if not args.no_plots:
        plot(rows, mode_names, args.out_dir)
    if failed:
        print("compare: some runs FAILED; node logs kept in %s" % work)
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
