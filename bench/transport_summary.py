#!/usr/bin/python3
"""Summarizes bench/transport_compare.sh's rounds: per mode, workload and
value size, the median over the rounds of throughput, p99 latency, peer
bytes and node CPU per op, with the throughput range; then, because the
machine's load changes between rounds more than the transports differ, the
PAIRED ratios of throughput and node CPU per op (each round's run of a mode
against the same round's baseline run): every mode against TCP on loopback
(logical-3), and DPDK modes against TCP over the same veths and bridge
(logical-3-tcpns*). Writes <dir>/summary.csv and <dir>/ratios.csv and prints
the tables.

  bench/transport_summary.py bench/results/transport
"""

import csv
import glob
import os
import statistics
import sys

FIELDS = ["ops_per_s", "lat_p50_us", "lat_p99_us", "peer_bytes_per_op",
          "node_cpu_us_per_op", "ops_per_entry"]


def median_of(rows, field):
    values = [float(r[field]) for r in rows if r.get(field)]
    return statistics.median(values) if values else None


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    cells = {}
    by_round = {}  # (round dir prefix, workload, value) -> {mode: row}
    for path in sorted(glob.glob(os.path.join(out_dir, "round*", "compare.csv"))):
        round_name = os.path.basename(os.path.dirname(path)).split("-", 1)[0]
        with open(path) as f:
            for r in csv.DictReader(f):
                key = (r["mode"], r["workload"], int(r["value_bytes"]))
                cells.setdefault(key, []).append(r)
                if r["status"] == "ok":
                    by_round.setdefault((round_name, r["workload"], int(r["value_bytes"])),
                                        {})[r["mode"]] = r
    if not cells:
        sys.exit("transport_summary: no round*/compare.csv under %s" % out_dir)
    summary = []
    for (mode, workload, value_bytes), rows in sorted(cells.items()):
        ok = [r for r in rows if r["status"] == "ok"]
        row = {"mode": mode, "workload": workload, "value_bytes": value_bytes,
               "rounds_ok": len(ok), "rounds": len(rows)}
        for field in FIELDS:
            row[field] = median_of(ok, field)
        ops = [float(r["ops_per_s"]) for r in ok]
        row["ops_per_s_min"] = min(ops) if ops else None
        row["ops_per_s_max"] = max(ops) if ops else None
        summary.append(row)
    names = ["mode", "workload", "value_bytes", "rounds_ok", "rounds"] + FIELDS + \
        ["ops_per_s_min", "ops_per_s_max"]
    with open(os.path.join(out_dir, "summary.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names)
        w.writeheader()
        for row in summary:
            w.writerow({k: ("" if row[k] is None else row[k]) for k in names})

    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)
    print("%-26s %-7s %6s %5s %9s %17s %8s %8s %7s %7s %6s" % (
        "mode", "work", "value", "ok", "ops/s", "(min..max)", "p50 ms", "p99 ms",
        "peer B", "cpu us", "ops/e"))
    for r in summary:
        print("%-26s %-7s %6d %2d/%-2d %9s %17s %8s %8s %7s %7s %6s" % (
            r["mode"], r["workload"], r["value_bytes"], r["rounds_ok"], r["rounds"],
            fmt(r["ops_per_s"], ".0f"),
            "(%s..%s)" % (fmt(r["ops_per_s_min"], ".0f"), fmt(r["ops_per_s_max"], ".0f")),
            fmt(r["lat_p50_us"] and r["lat_p50_us"] / 1000, ".2f"),
            fmt(r["lat_p99_us"] and r["lat_p99_us"] / 1000, ".2f"),
            fmt(r["peer_bytes_per_op"], ".0f"), fmt(r["node_cpu_us_per_op"], ".1f"),
            fmt(r["ops_per_entry"], ".1f")))
    print("medians over rounds; peer B = bytes sent between nodes per op (DPDK: whole "
          "frames), cpu us = node CPU per op summed over the 3 nodes, ops/e = ops per Raft entry")

    # Paired ratios: every other mode against TCP on loopback (the issue's
    # baseline) and DPDK modes against TCP over the same veths and bridge.
    modes_seen = sorted({m for modes in by_round.values() for m in modes})
    pairs = [(m, "logical-3") for m in modes_seen if m != "logical-3"]
    pairs += [(m, b) for m in modes_seen if m.startswith("logical-3-dpdk")
              for b in modes_seen if b.startswith("logical-3-tcpns")]
    ratio_rows = []
    for mode, base in pairs:
        ratios = {}
        for (round_name, workload, value_bytes), modes in sorted(by_round.items()):
            a, b = modes.get(mode), modes.get(base)
            if not a or not b:
                continue
            entry = ratios.setdefault((workload, value_bytes), {"ops": [], "cpu": []})
            entry["ops"].append(float(a["ops_per_s"]) / float(b["ops_per_s"]))
            if a.get("node_cpu_us_per_op") and b.get("node_cpu_us_per_op"):
                entry["cpu"].append(float(a["node_cpu_us_per_op"]) /
                                    float(b["node_cpu_us_per_op"]))
        if not ratios:
            continue
        print("\npaired ratios %s / %s per round (median; every round)" % (mode, base))
        for (workload, value_bytes), e in sorted(ratios.items()):
            print("%-7s %5d B  throughput %4.2f  [%s]   node cpu/op %s  [%s]" % (
                workload, value_bytes, statistics.median(e["ops"]),
                " ".join("%.2f" % x for x in e["ops"]),
                "%4.2f" % statistics.median(e["cpu"]) if e["cpu"] else " n/a",
                " ".join("%.2f" % x for x in e["cpu"])))
            ratio_rows.append({
                "mode": mode, "baseline": base, "workload": workload,
                "value_bytes": value_bytes, "rounds": len(e["ops"]),
                "throughput_ratio_median": round(statistics.median(e["ops"]), 3),
                "throughput_ratios": " ".join("%.2f" % x for x in e["ops"]),
                "cpu_per_op_ratio_median":
                    round(statistics.median(e["cpu"]), 3) if e["cpu"] else "",
                "cpu_per_op_ratios": " ".join("%.2f" % x for x in e["cpu"])})
    if ratio_rows:
        with open(os.path.join(out_dir, "ratios.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(ratio_rows[0]))
            w.writeheader()
            w.writerows(ratio_rows)


if __name__ == "__main__":
    main()
