// The cluster file: one INI file describes a cluster and every node in it.
// The same file drives the node binary, the local launcher and the
// benchmark. Format and an example: node/CONFIG.md. Config is untrusted
// input: every field is validated with a clear error naming the line.
#ifndef BLIZZARD_NODE_CONFIG_H_
#define BLIZZARD_NODE_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace blizzard::node {

struct NodeConfig {
  uint64_t id = 0;               // > 0, unique.
  std::string host;              // IPv4 address clients and peers use.
  uint16_t client_port = 0;      // RESP.
  uint16_t peer_port = 0;        // Raft messages.
  std::string log_pool;          // Path of the pmemlog pool.
  uint64_t log_pool_bytes = 256ull << 20;
  std::string data_pool;         // Path of the data (structures) pool.
  uint64_t data_pool_bytes = 512ull << 20;
  // DPDK transport only (ignored by TCP).
  std::string mac;               // "aa:bb:cc:dd:ee:ff"
  std::string eal_args;          // e.g. "--vdev=net_af_packet0,iface=veth1"
};

struct ClusterConfig {
  uint64_t cluster_id = 0;       // > 0.
  // Raft timing: one tick every tick_ms; election timeout drawn from
  // [election_timeout_ticks, 2*election_timeout_ticks) ticks.
  uint32_t tick_ms = 10;
  uint32_t election_timeout_ticks = 15;
  uint32_t heartbeat_interval_ticks = 2;
  // Batching limits: client operations gathered in one Raft entry.
  uint32_t batch_ops_max = 4096;
  uint64_t batch_bytes_max = 4u << 20;
  uint32_t clients_max = 10000;  // Concurrent client connections per node.
  // DPDK transport only: true spins on the port (a dedicated core per
  // node); false backs off when idle (nodes sharing cores). TCP ignores it.
  bool busy_poll = false;
  // DPDK transport only: the IP MTU of frames between nodes; 0 (absent):
  // the largest the port reports. See CONFIG.md and transport.h.
  uint32_t mtu_bytes = 0;
  // DPDK transport only, with busy_poll = false: keep polling this long
  // after work before sleeping on the doorbell. 0: sleep at once.
  uint32_t idle_spin_us = 0;
  // DPDK transport only: how long an ack may wait for data to ride on.
  uint32_t ack_delay_us = 2000;
  // The bootstrap voters: the group as of an empty log. Empty: every node
  // in the file. Nodes of the file outside it start as non-members and
  // wait to be added (CLUSTER ADDLEARNER on the leader).
  std::vector<uint64_t> voters;
  // Log compaction: once the log pool's ring is this full (percent), the
  // node snapshots its data pool at the applied index and drops the log up
  // to it, keeping the last snapshot_keep_entries entries for followers
  // that lag a little.
  uint32_t snapshot_log_percent = 50;
  uint32_t snapshot_keep_entries = 64;
  uint64_t snapshot_chunk_bytes = 1u << 20;  // Per kSnapshot message.
  // Client sessions kept (exactly-once retries); the least recently used
  // is evicted beyond it.
  uint32_t sessions_max = 10000;
  // Admission control (node/README.md, "A full data pool"): above this
  // percentage of the data arena's capacity in use, the leader refuses
  // commands that may grow memory with Redis's OOM error before they enter
  // the log. Leader-local; the apply-time per-op OOM is the backstop.
  uint32_t max_memory_percent = 90;
  std::vector<NodeConfig> nodes; // 1..kNodesMax, sorted by id.

  // `voters`, or every node id when it is empty.
  std::vector<uint64_t> BootstrapVoters() const;

  const NodeConfig* Find(uint64_t id) const;
};

inline constexpr size_t kNodesMax = 9;

// InvalidArgument with "line N: ..." for syntax errors, unknown sections or
// keys, bad numbers, out-of-range values, duplicate ids/ports, missing
// required fields.
absl::StatusOr<ClusterConfig> ParseClusterConfig(std::string_view text);
// NotFound if the file cannot be read; otherwise as ParseClusterConfig.
absl::StatusOr<ClusterConfig> LoadClusterConfig(const std::string& path);

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_CONFIG_H_
