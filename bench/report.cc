#include "bench/report.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace blizzard::bench {
namespace {

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  return out + "\"";
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.6g", v);
}

std::string JsonOptional(const std::optional<double>& v) {
  return v ? JsonNumber(*v) : "null";
}

// CSV cells: quoted when they hold a separator, quote or line break.
std::string CsvCell(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"') out += '"';
    out.push_back(c);
  }
  return out + "\"";
}

std::string ErrorKindsText(const RunReport& r) {
  return absl::StrJoin(r.error_kinds, "; ", [](std::string* out, const auto& kv) {
    absl::StrAppend(out, kv.first, " x", kv.second);
  });
}

void AppendLatencyJson(std::string& out, const LatencySummary& l) {
  absl::StrAppend(&out, "{\"count\":", l.count, ",\"p50_us\":", JsonNumber(l.p50_us),
                  ",\"p90_us\":", JsonNumber(l.p90_us), ",\"p99_us\":", JsonNumber(l.p99_us),
                  ",\"p999_us\":", JsonNumber(l.p999_us), ",\"max_us\":", JsonNumber(l.max_us),
                  ",\"mean_us\":", JsonNumber(l.mean_us), "}");
}

}  // namespace

std::string FormatSummary(const RunReport& r) {
  std::string s;
  absl::StrAppendFormat(&s, "blizzard_load %s%s%s\n", r.workload,
                        r.label.empty() ? "" : "  label ", r.label);
  absl::StrAppendFormat(&s, "  target        %s (%s transport, %s replication, INFO from %d "
                        "node%s)\n", r.target, r.transport, r.replication_mode, r.nodes_sampled,
                        r.nodes_sampled == 1 ? "" : "s");
  absl::StrAppendFormat(&s, "  load          %d connections x pipeline %d, %d keys %s%s, "
                        "values %d B, seed %d\n", r.connections, r.pipeline, r.keys,
                        r.distribution,
                        r.distribution == "zipf" ? absl::StrFormat(" (s=%g)", r.zipf_s) : "",
                        r.value_bytes, r.seed);
  absl::StrAppendFormat(&s, "  throughput    %.0f ops/s (%d ops in %.2f s)\n", r.ops_per_s,
                        r.ops, r.measured_s);
  absl::StrAppendFormat(&s, "  latency       p50 %.1f us  p90 %.1f us  p99 %.1f us  "
                        "p99.9 %.1f us  max %.1f us  mean %.1f us\n", r.latency.p50_us,
                        r.latency.p90_us, r.latency.p99_us, r.latency.p999_us,
                        r.latency.max_us, r.latency.mean_us);
  for (const auto& [op, l] : r.latency_by_op) {
    absl::StrAppendFormat(&s, "    %-10s  %d ok, p50 %.1f us  p99 %.1f us  p99.9 %.1f us\n",
                          op, l.count, l.p50_us, l.p99_us, l.p999_us);
  }
  absl::StrAppendFormat(&s, "  errors        %d (%.3f%%)%s%s\n", r.errors,
                        r.ops == 0 ? 0.0 : 100.0 * static_cast<double>(r.errors) /
                                               static_cast<double>(r.ops),
                        r.error_kinds.empty() ? "" : "; by kind, warm-up included: ",
                        ErrorKindsText(r));
  absl::StrAppendFormat(&s, "  redirects     %d   connection failures %d   lost %d\n",
                        r.redirects, r.connection_failures, r.lost);
  s += "  per op        ";
  for (const auto& [name, v] : r.node_counters_per_op) {
    absl::StrAppend(&s, name, " ", v ? absl::StrFormat("%.1f", *v) : "n/a", "   ");
  }
  absl::StrAppend(&s, "\n                node cpu ",
                  r.node_cpu_us_per_op ? absl::StrFormat("%.2f us", *r.node_cpu_us_per_op)
                                       : "n/a",
                  "   client cpu ",
                  r.client_cpu_us_per_op ? absl::StrFormat("%.2f us", *r.client_cpu_us_per_op)
                                         : "n/a",
                  absl::StrFormat("   client bytes sent %.1f received %.1f\n",
                                  r.client_bytes_sent_per_op, r.client_bytes_received_per_op));
  if (!r.abort_reason.empty()) absl::StrAppend(&s, "  ENDED EARLY   ", r.abort_reason, "\n");
  if (!r.failure.empty()) absl::StrAppend(&s, "  FAILED        ", r.failure, "\n");
  return s;
}

std::string FormatJson(const RunReport& r) {
  std::string s = "{";
  absl::StrAppend(&s, "\"label\":", JsonString(r.label), ",\"target\":", JsonString(r.target),
                  ",\"workload\":", JsonString(r.workload),
                  ",\"distribution\":", JsonString(r.distribution),
                  ",\"zipf_s\":", JsonNumber(r.zipf_s), ",\"keys\":", r.keys,
                  ",\"value_bytes\":", r.value_bytes, ",\"connections\":", r.connections,
                  ",\"pipeline\":", r.pipeline, ",\"seed\":", r.seed,
                  ",\"transport\":", JsonString(r.transport),
                  ",\"replication_mode\":", JsonString(r.replication_mode),
                  ",\"nodes_sampled\":", r.nodes_sampled);
  absl::StrAppend(&s, ",\"measured_s\":", JsonNumber(r.measured_s), ",\"ops\":", r.ops,
                  ",\"ops_per_s\":", JsonNumber(r.ops_per_s), ",\"errors\":", r.errors,
                  ",\"error_kinds\":{");
  absl::StrAppend(&s, absl::StrJoin(r.error_kinds, ",", [](std::string* out, const auto& kv) {
    absl::StrAppend(out, JsonString(kv.first), ":", kv.second);
  }));
  absl::StrAppend(&s, "},\"redirects\":", r.redirects,
                  ",\"connection_failures\":", r.connection_failures, ",\"lost\":", r.lost,
                  ",\"latency\":");
  AppendLatencyJson(s, r.latency);
  s += ",\"latency_by_op\":{";
  for (size_t i = 0; i < r.latency_by_op.size(); ++i) {
    absl::StrAppend(&s, i == 0 ? "" : ",", JsonString(r.latency_by_op[i].first), ":");
    AppendLatencyJson(s, r.latency_by_op[i].second);
  }
  s += "}";
  for (const auto& [name, v] : r.node_counters_per_op) {
    absl::StrAppend(&s, ",", JsonString(name + "_per_op"), ":", JsonOptional(v));
  }
  absl::StrAppend(&s, ",\"node_cpu_us_per_op\":", JsonOptional(r.node_cpu_us_per_op),
                  ",\"client_cpu_us_per_op\":", JsonOptional(r.client_cpu_us_per_op),
                  ",\"client_bytes_sent_per_op\":", JsonNumber(r.client_bytes_sent_per_op),
                  ",\"client_bytes_received_per_op\":",
                  JsonNumber(r.client_bytes_received_per_op),
                  ",\"abort_reason\":", JsonString(r.abort_reason),
                  ",\"failure\":", JsonString(r.failure), "}");
  return s;
}

std::string CsvHeader(const RunReport& r) {
  std::string s =
      "label,target,workload,distribution,zipf_s,keys,value_bytes,connections,pipeline,seed,"
      "transport,replication_mode,nodes_sampled,measured_s,ops,ops_per_s,errors,error_kinds,"
      "redirects,connection_failures,lost,lat_p50_us,lat_p90_us,lat_p99_us,lat_p999_us,"
      "lat_max_us,lat_mean_us";
  for (const auto& [name, v] : r.node_counters_per_op) absl::StrAppend(&s, ",", name, "_per_op");
  s += ",node_cpu_us_per_op,client_cpu_us_per_op,client_bytes_sent_per_op,"
       "client_bytes_received_per_op,abort_reason,failure";
  return s;
}

std::string CsvRow(const RunReport& r) {
  auto opt = [](const std::optional<double>& v) {
    return v ? absl::StrFormat("%.4g", *v) : std::string();
  };
  std::vector<std::string> cells = {
      CsvCell(r.label), CsvCell(r.target), CsvCell(r.workload), CsvCell(r.distribution),
      absl::StrFormat("%g", r.zipf_s), absl::StrCat(r.keys), absl::StrCat(r.value_bytes),
      absl::StrCat(r.connections), absl::StrCat(r.pipeline), absl::StrCat(r.seed),
      CsvCell(r.transport), CsvCell(r.replication_mode), absl::StrCat(r.nodes_sampled),
      absl::StrFormat("%.3f", r.measured_s), absl::StrCat(r.ops),
      absl::StrFormat("%.0f", r.ops_per_s), absl::StrCat(r.errors),
      CsvCell(ErrorKindsText(r)), absl::StrCat(r.redirects),
      absl::StrCat(r.connection_failures), absl::StrCat(r.lost),
      absl::StrFormat("%.1f", r.latency.p50_us), absl::StrFormat("%.1f", r.latency.p90_us),
      absl::StrFormat("%.1f", r.latency.p99_us), absl::StrFormat("%.1f", r.latency.p999_us),
      absl::StrFormat("%.1f", r.latency.max_us), absl::StrFormat("%.1f", r.latency.mean_us)};
  for (const auto& [name, v] : r.node_counters_per_op) cells.push_back(opt(v));
  cells.push_back(opt(r.node_cpu_us_per_op));
  cells.push_back(opt(r.client_cpu_us_per_op));
  cells.push_back(absl::StrFormat("%.1f", r.client_bytes_sent_per_op));
  cells.push_back(absl::StrFormat("%.1f", r.client_bytes_received_per_op));
  cells.push_back(CsvCell(r.abort_reason));
  cells.push_back(CsvCell(r.failure));
  return absl::StrJoin(cells, ",");
}

}  // namespace blizzard::bench
