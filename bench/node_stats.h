// What the nodes say about themselves, sampled before and after a run:
// INFO counters (bytes between nodes, NVM bytes persisted) and the CPU time
// of the node processes, so the load generator can report them per op.
#ifndef BLIZZARD_BENCH_NODE_STATS_H_
#define BLIZZARD_BENCH_NODE_STATS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "bench/net.h"

namespace blizzard::bench {

using InfoFields = absl::flat_hash_map<std::string, std::string>;

// "key:value" lines of an INFO reply; "# Section" and blank lines skipped.
InfoFields ParseInfo(std::string_view text);
absl::StatusOr<InfoFields> FetchInfo(const Endpoint& endpoint, int timeout_ms);

// utime + stime (clock ticks) from the text of /proc/<pid>/stat. The command
// name (field 2) may hold spaces and parentheses: fields are counted after
// the LAST ')'.
absl::StatusOr<uint64_t> ParseProcStatCpuTicks(std::string_view stat);
// User + system CPU time of a process of this machine, in nanoseconds.
absl::StatusOr<uint64_t> ProcessCpuNs(int64_t pid);

// The node that says it leads with the highest term; retries until
// timeout_ms (an election may be in progress). Unavailable naming what each
// node answered if none leads in time.
absl::StatusOr<Endpoint> FindLeader(const std::vector<Endpoint>& nodes, int timeout_ms);

struct NodeSample {
  Endpoint endpoint;
  std::optional<InfoFields> info;  // nullopt: the node did not answer INFO.
  // The node's CPU time: present when INFO gave a process_id of a process
  // on this machine that /proc shows.
  std::optional<uint64_t> cpu_ns;
};

// CPU is read for loopback nodes, or for every node with `local_nodes` (the
// caller knows they run on this machine at other addresses, e.g. in network
// namespaces: tools/blizzard_cluster.py --netns).
std::vector<NodeSample> SampleNodes(const std::vector<Endpoint>& nodes, int timeout_ms,
                                    bool local_nodes = false);

// Sums over all nodes of the growth of one INFO counter (or of CPU time)
// between two samples; nullopt ("n/a") unless every node reported it, as an
// unsigned integer, in both samples.
std::optional<uint64_t> CounterDelta(const std::vector<NodeSample>& before,
                                     const std::vector<NodeSample>& after,
                                     std::string_view field);
std::optional<uint64_t> CpuDelta(const std::vector<NodeSample>& before,
                                 const std::vector<NodeSample>& after);

}  // namespace blizzard::bench

#endif  // BLIZZARD_BENCH_NODE_STATS_H_
