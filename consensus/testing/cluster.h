// A deterministic in-memory cluster of Raft nodes for tests (testonly).
//
// N Raft instances, each with a MemoryStorage and a "state machine" that is
// the list of entries it applied, connected by a seeded simulated network
// (drop, duplicate, delay, partitions). Nodes can crash (their Raft object
// is destroyed; storage, snapshot and applied state survive, as pmem would;
// a snapshot being received is lost) and restart from storage. Messages go
// through the wire codec.
//
// The state machine can be snapshotted (its applied sequence, serialized)
// and the log compacted (Compact); a follower that needs compacted entries
// receives the snapshot in chunks, stages them and installs it, as the
// Ready contract says. Spare nodes (ClusterOptions::spare_nodes) start
// outside the group and can be added with membership changes.
//
// The cluster checks Raft's safety properties continuously and records each
// violation (violations()):
//   - election safety: at most one leader per term;
//   - state machine safety: every node applies index i with the same entry,
//     in index order with no gaps;
//   - leader completeness: a new leader's log holds every entry applied
//     anywhere so far;
//   - read safety: a ReadState's index covers every entry known committed
//     anywhere when the read was requested;
//   - snapshots: chunks follow the staged bytes, an installed snapshot is
//     complete and agrees with every entry applied anywhere, and extends
//     what the node had applied;
//   - log matching (CheckLogMatching(), on demand): two logs agreeing on
//     (index, term) agree on every entry up to there.
// Everything derives from ClusterOptions::seed: a failure replays exactly.
#ifndef BLIZZARD_CONSENSUS_TESTING_CLUSTER_H_
#define BLIZZARD_CONSENSUS_TESTING_CLUSTER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/raft.h"
#include "consensus/storage.h"
#include "consensus/types.h"

namespace blizzard::consensus::testing {

struct NetworkOptions {
  double drop_probability = 0.0;
  double duplicate_probability = 0.0;
  int delay_ticks_max = 0;  // Each message waits uniform [0, max] ticks.
};

struct ClusterOptions {
  int nodes = 3;  // Ids 1..nodes: the bootstrap voters.
  // Ids nodes+1..nodes+spare_nodes: running, outside the group until added.
  int spare_nodes = 0;
  uint64_t seed = 1;
  // Template for every node; id, voters, random_seed and applied are set
  // per node.
  Config config;
  NetworkOptions network;
  // Probability that, between GetReady and Advance, a few messages for the
  // node are stepped (as a driver that persists asynchronously would).
  double interleave_probability = 0.0;
  // Logs and hard states to start from (e.g. divergent logs of Raft's
  // figure 7); nodes not listed start empty.
  std::map<NodeId, std::vector<Entry>> initial_entries;
  std::map<NodeId, HardState> initial_hard_states;
};

class Cluster {
 public:
  explicit Cluster(const ClusterOptions& options);
  ~Cluster();

  const std::vector<NodeId>& ids() const { return ids_; }
  bool IsUp(NodeId id) const;
  // The node's Raft; it must be up.
  Raft& node(NodeId id);
  MemoryStorage& storage(NodeId id);
  // Entries the node applied, in order (its state machine).
  const std::vector<Entry>& applied(NodeId id) const;
  const std::vector<ReadState>& read_states(NodeId id) const;
  NetworkOptions& network() { return options_.network; }

  // ---- Time ----
  // One tick on every up node, then delivery of the messages now due.
  void Tick();
  void RunTicks(int ticks);
  // Delivers every message in flight (ignoring delays), repeatedly, until
  // none is left. No ticks.
  void Stabilize();
  // Scripted delivery (etcd-style network filters): delivers, in order and
  // ignoring delays, every in-flight message matching `filter` and every
  // matching message that causes, until none is left; others stay.
  void DeliverIf(const std::function<bool(const Message&)>& filter);
  // Drops every in-flight message matching `filter`.
  void DropIf(const std::function<bool(const Message&)>& filter);
  // Ticks only node `id`; delivers nothing.
  void TickNode(NodeId id);
  // Delivers, in order and ignoring delays, the in-flight messages that
  // match `filter` now; the messages that causes stay in flight.
  void DeliverPending(const std::function<bool(const Message&)>& filter);
  // Ticks until some up node is leader (and the network is quiet if
  // possible); the leader's id, or nullopt after `ticks_max`.
  std::optional<NodeId> WaitForLeader(int ticks_max);
  // Ticks until every up node has applied `index`, at most ticks_max.
  bool WaitForApplied(Index index, int ticks_max);

  // ---- Client actions ----
  absl::StatusOr<Index> Propose(NodeId id, std::string data);
  absl::Status ReadIndex(NodeId id, uint64_t context);
  void Campaign(NodeId id);
  absl::StatusOr<Index> ChangeMembership(NodeId id, MembershipChange change);
  absl::Status TransferLeadership(NodeId id, NodeId target);

  // ---- Snapshots ----
  // The driver's compaction: snapshots the node's state machine at its
  // applied index (unless its snapshot is as new) and discards the log
  // below snapshot index + 1 - keep_entries. The node must be up.
  absl::Status Compact(NodeId id, Index keep_entries);
  // The serialized state machine (a snapshot's bytes) and back.
  static std::string SerializeApplied(const std::vector<Entry>& applied);
  static absl::StatusOr<std::vector<Entry>> DeserializeApplied(
      const std::string& bytes);
  uint64_t snapshots_installed() const { return snapshots_installed_; }
  // The up node that is leader with the highest term, if any.
  std::optional<NodeId> Leader() const;

  // A new node outside the group (bootstrap membership: the founders),
  // running; add it with ChangeMembership. Returns its id.
  NodeId AddNode();

  // Golden traces: while set, every Ready handled and every message
  // delivered or dropped is appended to *trace (testing/trace.h forms).
  void set_trace(std::string* trace) { trace_ = trace; }

  // ---- Faults ----
  void Crash(NodeId id);
  // Recreates the Raft from its storage; applied = its state machine's.
  absl::Status Restart(NodeId id);
  // Cuts every link between different groups (each node in one group).
  void Partition(const std::vector<std::vector<NodeId>>& groups);
  void Isolate(NodeId id);
  void CutLink(NodeId a, NodeId b);  // Both directions.
  void CutOneWay(NodeId from, NodeId to);
  void Heal();

  // ---- Checks ----
  const std::vector<std::string>& violations() const { return violations_; }
  // Log matching over the persisted logs of all nodes; records violations.
  void CheckLogMatching();
  // Highest index known committed anywhere (from persisted hard states).
  Index max_commit() const { return max_commit_; }
  // Steps that returned an error (e.g. forged messages): none expected.
  const std::vector<std::string>& step_errors() const { return step_errors_; }
  uint64_t messages_delivered() const { return messages_delivered_; }
  uint64_t messages_dropped() const { return messages_dropped_; }
  // Delivered messages by type, e.g. rejected appends (kAppendResponse with
  // reject) to measure back-off.
  uint64_t delivered(MessageType type) const;
  uint64_t append_rejections() const { return append_rejections_; }
  std::string Describe() const;

 private:
  struct Node {
    NodeId id = kNoNode;
    std::unique_ptr<MemoryStorage> storage;
    std::unique_ptr<Raft> raft;  // Null while crashed.
    std::vector<Entry> applied;
    std::vector<ReadState> read_states;
    bool in_ready = false;  // Between GetReady and Advance.
    // A snapshot being received (volatile: lost on a crash).
    SnapshotMeta staged_meta;
    std::string staged;
    bool staging = false;
  };
  struct InFlight {
    uint64_t deliver_at = 0;
    uint64_t sequence = 0;
    NodeId from = kNoNode;
    NodeId to = kNoNode;
    std::string bytes;  // Encoded with the wire codec.
    bool operator<(const InFlight& o) const {
      return std::tie(deliver_at, sequence) < std::tie(o.deliver_at, o.sequence);
    }
  };

  void Trace(const std::string& line);
  Node& NodeRef(NodeId id);
  const Node& NodeRef(NodeId id) const;
  Config NodeConfig(NodeId id, Index applied) const;
  bool LinkUp(NodeId from, NodeId to) const;
  uint64_t Random(uint64_t n) { return rng_() % n; }
  bool Chance(double p);
  void Send(const Message& m);
  void Deliver(const InFlight& msg);
  // Delivers, in order, every message due at or before `until`.
  void DeliverDue(uint64_t until);
  Message DecodeInFlight(const InFlight& msg) const;
  // Decodes and steps a message; false if it was not delivered.
  bool StepMessage(const InFlight& msg);
  // Steps up to `count` in-flight messages for `id` while it holds a Ready.
  void InterleaveInputs(NodeId id, int count);
  // Processes every Ready of the node and checks leadership after input.
  void AfterInput(NodeId id);
  void ProcessReady(Node& node);
  void StageChunks(Node& node, const Ready& rd);
  void InstallSnapshot(Node& node, const SnapshotMeta& meta);
  void CheckLeader(Node& node);
  void Violation(std::string what);

  ClusterOptions options_;
  std::vector<NodeId> ids_;
  std::map<NodeId, Node> nodes_;
  std::mt19937_64 rng_;
  uint64_t now_ = 0;
  uint64_t sequence_ = 0;
  std::set<InFlight> in_flight_;
  std::set<std::pair<NodeId, NodeId>> cut_links_;

  std::map<Term, NodeId> leaders_;         // Election safety.
  std::vector<Entry> applied_anywhere_;    // Index i at [i - 1].
  Index max_commit_ = 0;
  std::map<std::pair<NodeId, uint64_t>, Index> read_floor_;  // Read safety.
  std::vector<std::string> violations_;
  std::vector<std::string> step_errors_;
  uint64_t messages_delivered_ = 0;
  uint64_t messages_dropped_ = 0;
  uint64_t append_rejections_ = 0;
  uint64_t snapshots_installed_ = 0;
  std::map<MessageType, uint64_t> delivered_by_type_;
  std::string* trace_ = nullptr;
};

}  // namespace blizzard::consensus::testing

#endif  // BLIZZARD_CONSENSUS_TESTING_CLUSTER_H_
