// blizzard_load: a closed-loop RESP load generator for Blizzard (and any
// Redis-protocol server). See README.md.
//
//   blizzard_load --config=cluster.ini --workload=getset --connections=32
//       --pipeline=8 --keys=100000 --distribution=zipf --value_bytes=128
//       --duration_s=10 --json
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/load_runner.h"
#include "bench/node_stats.h"
#include "bench/report.h"
#include "bench/workload.h"
#include "node/config.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Server host (without --config).");
ABSL_FLAG(int32_t, port, 0, "Server client port (without --config).");
ABSL_FLAG(std::string, config, "",
          "Cluster INI file: load goes to the leader (found via INFO), counters are read "
          "from every node.");
ABSL_FLAG(std::string, workload, "set", "set | getset | zadd | list | sadd");
ABSL_FLAG(int32_t, connections, 16, "Client connections.");
ABSL_FLAG(int32_t, pipeline, 1, "Requests outstanding per connection.");
ABSL_FLAG(uint64_t, keys, 10000, "Key space size.");
ABSL_FLAG(std::string, distribution, "uniform", "Key distribution: uniform | zipf.");
ABSL_FLAG(double, zipf_s, 0.99, "Zipf exponent (with --distribution=zipf).");
ABSL_FLAG(std::string, value_bytes, "16", "Value size: bytes, or with K/M (16, 128, 1K).");
ABSL_FLAG(double, duration_s, 10, "Measured seconds (unless --ops).");
ABSL_FLAG(uint64_t, ops, 0, "Measure exactly this many requests instead of a duration.");
ABSL_FLAG(double, warmup_s, 1, "Seconds of unmeasured load first.");
ABSL_FLAG(uint64_t, seed, 1,
          "Seed of keys, values and the GET/SET mix. ZADD members include it and SADD pairs "
          "come from it: a run that must add new members to a cluster an earlier run loaded "
          "needs another seed.");
ABSL_FLAG(double, max_error_pct, 1.0,
          "Fail (exit 1) when more than this percentage of replies are errors.");
ABSL_FLAG(bool, fail_fast, true, "Stop as soon as the error limit is exceeded.");
ABSL_FLAG(bool, progress, true, "A progress line per second on stderr.");
ABSL_FLAG(bool, json, false, "Print one JSON object as the last line of stdout.");
ABSL_FLAG(std::string, csv_out, "", "Append a CSV row to this file (header if new).");
ABSL_FLAG(std::string, label, "", "Free text carried into the JSON/CSV (e.g. the mode).");
ABSL_FLAG(std::string, info_counters, "peer_bytes_sent,log_bytes_persisted,data_bytes_written",
          "INFO counters reported per op (summed over the nodes).");
ABSL_FLAG(bool, local_nodes, false,
          "The nodes run on this machine whatever their addresses (network namespaces): "
          "report their CPU from /proc (otherwise only for loopback nodes).");
ABSL_FLAG(double, leader_timeout_s, 10, "How long to wait for a leader (with --config).");
ABSL_FLAG(double, connect_timeout_s, 10, "How long connections may take to come up.");

namespace {

using namespace blizzard::bench;  // NOLINT: a main file.

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

uint64_t SelfCpuNs() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto ns = [](const timeval& tv) {
    return static_cast<uint64_t>(tv.tv_sec) * 1'000'000'000ull +
           static_cast<uint64_t>(tv.tv_usec) * 1000ull;
  };
  return ns(ru.ru_utime) + ns(ru.ru_stime);
}

LatencySummary Summarize(const Histogram& h) {
  auto us = [](uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  LatencySummary l;
  l.count = h.count();
  l.p50_us = us(h.Percentile(0.50));
  l.p90_us = us(h.Percentile(0.90));
  l.p99_us = us(h.Percentile(0.99));
  l.p999_us = us(h.Percentile(0.999));
  l.max_us = us(h.max());
  l.mean_us = h.mean() / 1000.0;
  return l;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Closed-loop RESP load generator.\n"
      "Usage: blizzard_load (--config=cluster.ini | --host=H --port=P) [--workload=...]");
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  LoadOptions o;
  absl::StatusOr<WorkloadKind> kind = ParseWorkload(absl::GetFlag(FLAGS_workload));
  if (!kind.ok()) return Usage(std::string(kind.status().message()));
  absl::StatusOr<Distribution> dist = ParseDistribution(absl::GetFlag(FLAGS_distribution));
  if (!dist.ok()) return Usage(std::string(dist.status().message()));
  absl::StatusOr<size_t> value_bytes = ParseByteSize(absl::GetFlag(FLAGS_value_bytes));
  if (!value_bytes.ok()) return Usage(std::string(value_bytes.status().message()));
  o.workload = WorkloadOptions{*kind, absl::GetFlag(FLAGS_keys), *dist,
                               absl::GetFlag(FLAGS_zipf_s), *value_bytes,
                               absl::GetFlag(FLAGS_seed)};
  o.connections = absl::GetFlag(FLAGS_connections);
  o.pipeline = absl::GetFlag(FLAGS_pipeline);
  o.warmup_s = absl::GetFlag(FLAGS_warmup_s);
  o.duration_s = absl::GetFlag(FLAGS_duration_s);
  o.ops = absl::GetFlag(FLAGS_ops);
  o.max_error_fraction = absl::GetFlag(FLAGS_max_error_pct) / 100.0;
  o.fail_fast = absl::GetFlag(FLAGS_fail_fast);
  o.progress = absl::GetFlag(FLAGS_progress);
  o.connect_timeout_s = absl::GetFlag(FLAGS_connect_timeout_s);
  o.stop = &g_stop;

  // Where the load goes and whose counters are read.
  std::vector<Endpoint> nodes;
  const std::string config_path = absl::GetFlag(FLAGS_config);
  if (!config_path.empty()) {
    absl::StatusOr<blizzard::node::ClusterConfig> cluster =
        blizzard::node::LoadClusterConfig(config_path);
    if (!cluster.ok()) return Usage(absl::StrCat("cluster file: ", cluster.status().message()));
    for (const blizzard::node::NodeConfig& n : cluster->nodes) {
      nodes.push_back(Endpoint{n.host, n.client_port});
    }
    absl::StatusOr<Endpoint> leader = FindLeader(
        nodes, static_cast<int>(absl::GetFlag(FLAGS_leader_timeout_s) * 1000));
    if (!leader.ok()) return Usage(std::string(leader.status().message()));
    o.target = *leader;
    o.cluster = nodes;
  } else {
    const int port = absl::GetFlag(FLAGS_port);
    if (port <= 0 || port > 65535) return Usage("--port (1..65535) or --config is required");
    o.target = Endpoint{absl::GetFlag(FLAGS_host), static_cast<uint16_t>(port)};
    nodes.push_back(o.target);
  }

  std::vector<NodeSample> before, after;
  uint64_t client_cpu_before = 0, client_cpu_after = 0;
  o.on_measure_start = [&] {
    before = SampleNodes(nodes, 2000, absl::GetFlag(FLAGS_local_nodes));
    client_cpu_before = SelfCpuNs();
  };
  o.on_measure_end = [&] {
    client_cpu_after = SelfCpuNs();
    after = SampleNodes(nodes, 2000, absl::GetFlag(FLAGS_local_nodes));
  };

  absl::StatusOr<LoadResult> result = RunLoad(o);
  if (!result.ok()) return Usage(std::string(result.status().message()));
  const LoadResult& r = *result;
  if (after.empty()) after = SampleNodes(nodes, 2000, absl::GetFlag(FLAGS_local_nodes));  // Ended before measuring.

  RunReport rep;
  rep.label = absl::GetFlag(FLAGS_label);
  rep.target = o.target.ToString();
  rep.workload = std::string(WorkloadName(o.workload.kind));
  rep.distribution = std::string(DistributionName(o.workload.distribution));
  rep.zipf_s = o.workload.distribution == Distribution::kZipf ? o.workload.zipf_s : 0;
  rep.keys = o.workload.keys;
  rep.value_bytes = o.workload.value_bytes;
  rep.connections = o.connections;
  rep.pipeline = o.pipeline;
  rep.seed = o.workload.seed;
  for (const NodeSample& s : after) {
    if (!s.info) continue;
    ++rep.nodes_sampled;
    auto field = [&](const char* name) {
      auto it = s.info->find(name);
      return it == s.info->end() ? std::string("n/a") : it->second;
    };
    rep.transport = field("transport");
    rep.replication_mode = field("replication_mode");
  }
  rep.measured_s = r.measured_s;
  rep.ops = r.ops;
  rep.ops_per_s = r.measured_s > 0 ? static_cast<double>(r.ops) / r.measured_s : 0;
  rep.errors = r.errors;
  rep.error_kinds = r.error_kinds;
  rep.redirects = r.redirects;
  rep.connection_failures = r.connection_failures;
  rep.lost = r.lost;
  rep.latency = Summarize(r.latency_ns);
  for (int k = 0; k < kOpKinds; ++k) {
    if (r.ops_by_op[k] == 0) continue;
    rep.latency_by_op.emplace_back(std::string(OpName(static_cast<OpKind>(k))),
                                   Summarize(r.latency_ns_by_op[k]));
  }
  const double ops = static_cast<double>(r.ops);
  auto per_op = [&](std::optional<uint64_t> total) -> std::optional<double> {
    if (!total || r.ops == 0) return std::nullopt;
    return static_cast<double>(*total) / ops;
  };
  for (const std::string& name : std::vector<std::string>(
           absl::StrSplit(absl::GetFlag(FLAGS_info_counters), ',', absl::SkipEmpty()))) {
    rep.node_counters_per_op.emplace_back(name, per_op(CounterDelta(before, after, name)));
  }
  if (std::optional<double> cpu = per_op(CpuDelta(before, after))) {
    rep.node_cpu_us_per_op = *cpu / 1000.0;
  }
  if (r.ops > 0 && client_cpu_after >= client_cpu_before) {
    rep.client_cpu_us_per_op =
        static_cast<double>(client_cpu_after - client_cpu_before) / ops / 1000.0;
  }
  rep.client_bytes_sent_per_op = r.ops ? static_cast<double>(r.bytes_sent) / ops : 0;
  rep.client_bytes_received_per_op = r.ops ? static_cast<double>(r.bytes_received) / ops : 0;
  rep.abort_reason = r.abort_reason;

  // Error replies over the limit fail the run, and say which ones (an
  // unsupported command is the usual cause).
  const uint64_t replies = r.ops + r.warmup_replies;
  const uint64_t errors = r.errors + r.warmup_errors;
  if (replies > 0 && static_cast<double>(errors) >
                         o.max_error_fraction * static_cast<double>(replies)) {
    std::string top;
    uint64_t top_count = 0;
    for (const auto& [k, n] : r.error_kinds) {
      if (n > top_count) top = k, top_count = n;
    }
    rep.failure = absl::StrFormat(
        "%.1f%% of replies were errors (limit %.1f%%)%s", 100.0 * errors / replies,
        absl::GetFlag(FLAGS_max_error_pct),
        top.empty() ? "" : absl::StrCat("; most common: '", top, "'",
                                        top.find("unknown command") != std::string::npos
                                            ? absl::StrCat(" (the server does not support the ",
                                                           rep.workload, " workload's commands)")
                                            : ""));
  } else if (r.ops == 0) {
    rep.failure = absl::StrCat("no operation completed",
                               r.abort_reason.empty() ? "" : ": " + r.abort_reason);
  } else if (r.connections_open_at_end == 0) {
    rep.failure = absl::StrCat("no connection was up at the end (did the server stop?): ",
                               r.last_connection_error);
  }

  std::fputs(FormatSummary(rep).c_str(), stdout);
  if (absl::GetFlag(FLAGS_json)) std::printf("%s\n", FormatJson(rep).c_str());
  const std::string csv = absl::GetFlag(FLAGS_csv_out);
  if (!csv.empty()) {
    std::ifstream existing(csv);
    const bool fresh = !existing || existing.peek() == std::ifstream::traits_type::eof();
    std::ofstream out(csv, std::ios::app);
    if (fresh) out << CsvHeader(rep) << "\n";
    out << CsvRow(rep) << "\n";
    if (!out) std::fprintf(stderr, "error: cannot write %s\n", csv.c_str());
  }
  std::fflush(stdout);
  if (!rep.failure.empty()) {
    std::fprintf(stderr, "blizzard_load: FAILED: %s\n", rep.failure.c_str());
    return 1;
  }
  if (!r.abort_reason.empty()) {
    std::fprintf(stderr, "blizzard_load: FAILED: %s\n", r.abort_reason.c_str());
    return 1;
  }
  return 0;
}
