// The closed-loop load engine: N connections, each keeping up to
// `pipeline` requests outstanding, one thread, non-blocking sockets on
// epoll. A reply immediately frees its slot for the next request, so the
// offered load is whatever the server sustains (closed loop).
//
// It never crashes on what the server does: error replies are counted by
// kind, -MOVED redirects are followed (the connection moves to the named
// node once its outstanding replies are in), a closed connection is
// reconnected with back-off (to the leader found anew when the cluster is
// known), and requests lost with a connection are counted as `lost`
// (outcome unknown), not as operations.
#ifndef BLIZZARD_BENCH_LOAD_RUNNER_H_
#define BLIZZARD_BENCH_LOAD_RUNNER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/histogram.h"
#include "bench/net.h"
#include "bench/workload.h"

namespace blizzard::bench {

inline constexpr int kConnectionsMax = 4096;
inline constexpr int kPipelineMax = 4096;
inline constexpr int kErrorKindsMax = 32;  // Further kinds are counted as "other".

struct LoadOptions {
  Endpoint target;
  // When non-empty, a connection that was lost reconnects to the leader
  // found anew among these nodes (INFO role/term), not to `target`.
  std::vector<Endpoint> cluster;
  int connections = 16;
  int pipeline = 1;  // Requests outstanding per connection.
  WorkloadOptions workload;
  double warmup_s = 1.0;    // Load without measuring, first.
  double duration_s = 10.0; // Measured time, unless ops > 0.
  uint64_t ops = 0;         // > 0: measure exactly this many requests instead.
  // Stop early (and report why) once more than this fraction of at least
  // kFailFastReplies replies are errors; checked at the end of warm-up and
  // once a second.
  double max_error_fraction = 0.01;
  bool fail_fast = true;
  bool progress = true;            // A line per second on stderr.
  double connect_timeout_s = 10.0; // Every connection must be up once by then.
  double drain_timeout_s = 10.0;   // For the replies of the last requests.
  int redirects_max = 16;          // Consecutive -MOVED on one connection.
  // Called once between warm-up and measurement (the caller samples the
  // nodes' counters there), and once after the last measured reply.
  std::function<void()> on_measure_start;
  std::function<void()> on_measure_end;
  const std::atomic<bool>* stop = nullptr;  // Set (e.g. by SIGINT): drain and end.
};

inline constexpr uint64_t kFailFastReplies = 100;

struct LoadResult {
  // Measured requests that got a reply (errors included) and the time
  // from the start of measurement to the last of those replies.
  uint64_t ops = 0;
  double measured_s = 0;
  uint64_t errors = 0;
  // Error replies by kind, e.g. "ERR unknown command", warm-up included (a
  // run that fails during warm-up still says why).
  std::map<std::string, uint64_t> error_kinds;
  uint64_t redirects = 0;            // -MOVED replies followed (all phases).
  uint64_t connection_failures = 0;  // Connections lost or refused (all phases).
  uint64_t lost = 0;                 // Measured requests whose connection was lost.
  int connections_open_at_end = 0;   // 0: the server went away during the run.
  std::string last_connection_error; // The most recent reason a connection failed.
  uint64_t warmup_replies = 0;
  uint64_t warmup_errors = 0;
  // Latency of the successful measured replies, nanoseconds, from the time
  // the request was queued for sending to the time its reply was parsed.
  Histogram latency_ns;
  std::array<Histogram, kOpKinds> latency_ns_by_op;
  std::array<uint64_t, kOpKinds> ops_by_op{};
  uint64_t bytes_sent = 0;      // Client bytes while measuring.
  uint64_t bytes_received = 0;
  std::string abort_reason;     // Non-empty: the run ended early, and why.

  double error_fraction() const {
    return ops == 0 ? 0.0 : static_cast<double>(errors) / static_cast<double>(ops);
  }
};

// InvalidArgument for bad options; Unavailable when a connection could not
// be established within connect_timeout_s. Everything the server does
// during the run is reported in the result.
absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options);

// The kind of an error reply for counting: its text up to the first quote,
// comma, colon or parenthesis (what follows names the specific key or
// command), at most 48 bytes. "ERR unknown command 'ZADD', with ..." ->
// "ERR unknown command".
std::string ErrorKind(std::string_view error_text);

}  // namespace blizzard::bench

#endif  // BLIZZARD_BENCH_LOAD_RUNNER_H_
