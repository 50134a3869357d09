// The results of one load run, as a human summary, one JSON object and one
// CSV row (the machine-readable forms compare.py and spreadsheets read).
#ifndef BLIZZARD_BENCH_REPORT_H_
#define BLIZZARD_BENCH_REPORT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace blizzard::bench {

struct LatencySummary {
  uint64_t count = 0;
  double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0, mean_us = 0;
};

struct RunReport {
  std::string label;  // Free text from --label (e.g. the cluster mode).
  std::string target;
  std::string workload;
  std::string distribution;
  double zipf_s = 0;
  uint64_t keys = 0;
  uint64_t value_bytes = 0;
  int connections = 0;
  int pipeline = 0;
  uint64_t seed = 0;
  std::string transport = "n/a";         // From the nodes' INFO.
  std::string replication_mode = "n/a";
  int nodes_sampled = 0;                 // Nodes whose INFO was read.

  double measured_s = 0;
  uint64_t ops = 0;
  double ops_per_s = 0;
  uint64_t errors = 0;
  std::map<std::string, uint64_t> error_kinds;  // Warm-up included.
  uint64_t redirects = 0;
  uint64_t connection_failures = 0;
  uint64_t lost = 0;
  LatencySummary latency;
  std::vector<std::pair<std::string, LatencySummary>> latency_by_op;  // Ops that ran.

  // Per measured op; nullopt prints "n/a" (human) / null (JSON) / "" (CSV).
  // Node counters are summed over all sampled nodes, e.g.
  // {"peer_bytes_sent", 412.0}.
  std::vector<std::pair<std::string, std::optional<double>>> node_counters_per_op;
  std::optional<double> node_cpu_us_per_op;
  std::optional<double> client_cpu_us_per_op;
  double client_bytes_sent_per_op = 0;
  double client_bytes_received_per_op = 0;

  std::string abort_reason;  // Empty: the run went its full length.
  std::string failure;       // Empty: passed the error-rate check.
};

std::string FormatSummary(const RunReport& r);
std::string FormatJson(const RunReport& r);  // One line, no newline.
std::string CsvHeader(const RunReport& r);   // Columns depend on the counters.
std::string CsvRow(const RunReport& r);

}  // namespace blizzard::bench

#endif  // BLIZZARD_BENCH_REPORT_H_
