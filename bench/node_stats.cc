#include "bench/node_stats.h"

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench/sv.h"
#include "absl/base/internal/raw_logging.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace blizzard::bench {
namespace {

std::optional<uint64_t> UnsignedField(const NodeSample& sample, std::string_view field) {
  if (!sample.info) return std::nullopt;
  auto it = sample.info->find(AV(field));
  uint64_t v = 0;
  if (it == sample.info->end() || !absl::SimpleAtoi(it->second, &v)) return std::nullopt;
  return v;
}

// Sums after - before over matching nodes; nullopt if any is missing or
// went backwards (a node restarted: its counters began again).
template <typename Get>
std::optional<uint64_t> SumDeltas(const std::vector<NodeSample>& before,
                                  const std::vector<NodeSample>& after, Get get) {
  if (before.empty() || before.size() != after.size()) return std::nullopt;
  uint64_t total = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    ABSL_RAW_CHECK(before[i].endpoint == after[i].endpoint, "samples of different nodes");
    const std::optional<uint64_t> b = get(before[i]);
    const std::optional<uint64_t> a = get(after[i]);
    if (!a || !b || *a < *b) return std::nullopt;
    total += *a - *b;
  }
  return total;
}

}  // namespace

InfoFields ParseInfo(std::string_view text) {
  InfoFields fields;
  for (absl::string_view piece : absl::StrSplit(AV(text), '\n')) {
    std::string_view line(piece.data(), piece.size());
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    fields[AV(line.substr(0, colon))] = std::string(line.substr(colon + 1));
  }
  return fields;
}

absl::StatusOr<InfoFields> FetchInfo(const Endpoint& endpoint, int timeout_ms) {
  absl::StatusOr<Reply> reply = RoundTrip(endpoint, {"INFO"}, timeout_ms);
  if (!reply.ok()) return reply.status();
  if (reply->type != ReplyType::kBulk) {
    return absl::UnavailableError(absl::StrCat("INFO on ", endpoint.ToString(),
                                               " answered: ", reply->text));
  }
  return ParseInfo(reply->text);
}

absl::StatusOr<uint64_t> ParseProcStatCpuTicks(std::string_view stat) {
  const size_t paren = stat.rfind(')');
  if (paren == std::string_view::npos) {
    return absl::InvalidArgumentError("/proc stat line without ')'");
  }
  // After ") ": field 3 (state) is index 0, so utime (14) and stime (15)
  // are indices 11 and 12.
  std::vector<std::string> fields =
      absl::StrSplit(AV(stat.substr(paren + 1)), ' ', absl::SkipEmpty());
  uint64_t utime = 0;
  uint64_t stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return absl::InvalidArgumentError("/proc stat line without utime and stime");
  }
  return utime + stime;
}

absl::StatusOr<uint64_t> ProcessCpuNs(int64_t pid) {
  if (pid <= 0) return absl::InvalidArgumentError(absl::StrCat("bad pid ", pid));
  std::ifstream file(absl::StrCat("/proc/", pid, "/stat"));
  std::stringstream text;
  text << file.rdbuf();
  if (!file) return absl::NotFoundError(absl::StrCat("no process ", pid));
  absl::StatusOr<uint64_t> ticks = ParseProcStatCpuTicks(text.str());
  if (!ticks.ok()) return ticks.status();
  const long hz = sysconf(_SC_CLK_TCK);
  ABSL_RAW_CHECK(hz > 0, "sysconf(_SC_CLK_TCK) failed");
  return *ticks * (1'000'000'000ull / static_cast<uint64_t>(hz));
}

absl::StatusOr<Endpoint> FindLeader(const std::vector<Endpoint>& nodes, int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::vector<std::string> answers;
  for (;;) {
    answers.clear();
    std::optional<Endpoint> best;
    uint64_t best_term = 0;
    for (const Endpoint& node : nodes) {
      absl::StatusOr<InfoFields> info = FetchInfo(node, 1000);
      if (!info.ok()) {
        answers.push_back(absl::StrCat(node.ToString(), ": ", info.status().message()));
        continue;
      }
      const std::string role = (*info)["role"];
      answers.push_back(absl::StrCat(node.ToString(), ": ", role.empty() ? "no role" : role));
      uint64_t term = 0;
      if (role == "leader" && absl::SimpleAtoi((*info)["term"], &term) &&
          (!best || term > best_term)) {
        best = node;
        best_term = term;
      }
    }
    if (best) return *best;
    if (Clock::now() >= deadline) {
      return absl::UnavailableError(absl::StrCat("no leader within ", timeout_ms,
                                                 " ms (", absl::StrJoin(answers, "; "), ")"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::vector<NodeSample> SampleNodes(const std::vector<Endpoint>& nodes, int timeout_ms,
                                    bool local_nodes) {
  std::vector<NodeSample> samples;
  samples.reserve(nodes.size());
  for (const Endpoint& node : nodes) {
    NodeSample& s = samples.emplace_back();
    s.endpoint = node;
    absl::StatusOr<InfoFields> info = FetchInfo(node, timeout_ms);
    if (!info.ok()) continue;
    s.info = std::move(*info);
    const std::optional<uint64_t> pid = UnsignedField(s, "process_id");
    if (pid && (local_nodes || IsLoopback(node.host))) {
      absl::StatusOr<uint64_t> cpu = ProcessCpuNs(static_cast<int64_t>(*pid));
      if (cpu.ok()) s.cpu_ns = *cpu;
    }
  }
  return samples;
}

std::optional<uint64_t> CounterDelta(const std::vector<NodeSample>& before,
                                     const std::vector<NodeSample>& after,
                                     std::string_view field) {
  return SumDeltas(before, after, [&](const NodeSample& s) { return UnsignedField(s, field); });
}

std::optional<uint64_t> CpuDelta(const std::vector<NodeSample>& before,
                                 const std::vector<NodeSample>& after) {
  return SumDeltas(before, after, [](const NodeSample& s) { return s.cpu_ns; });
}

}  // namespace blizzard::bench
