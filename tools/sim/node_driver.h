// The driver of one simulated node: node/server.cc's event loop, minus the
// sockets, over the simulated network, pmemlog's LogCore on simulated
// persistent memory, and a key-value state machine with client sessions.
//
// One Iterate() is one loop iteration of the real server:
//   poll the transport (peer messages -> Raft, client requests -> batch),
//   tick, turn this iteration's writes into ONE Raft entry and its reads
//   into ONE ReadIndex round, then drain Raft's Ready: persist entries and
//   hard state (FIRST), send messages (only then), apply committed entries
//   (one atomic state machine step each) and answer their clients; fail
//   every pending request when leadership is lost; serve reads whose index
//   has been applied.
//
// Client sessions: a write whose (client, seq) the session table already
// holds is answered from it without a proposal; a retry that races its
// original into the log is filtered at apply time (kv_state_machine.h).
//
// Crash points: ArmCrash(n) makes the n-th event from now a power failure.
// Events are the region's stores / flushes / fences (inside pmemlog, so a
// crash can tear a write), message sends and entry applications. When it
// fires the driver stops at once (nothing more is sent or applied) and
// Iterate returns Aborted; crash_image() is what survives.
//
// Everything is deterministic: no clocks, no randomness of its own.
#ifndef BLIZZARD_TOOLS_SIM_NODE_DRIVER_H_
#define BLIZZARD_TOOLS_SIM_NODE_DRIVER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "consensus/raft.h"
#include "consensus/types.h"
#include "pmemlog/sim_persistence.h"
#include "tools/sim/command.h"
#include "tools/sim/kv_state_machine.h"
#include "tools/sim/sim_log_storage.h"
#include "transport/transport.h"

namespace blizzard::sim {

// What the simulator's checks and trace see of a node. Every method has a
// no-op default; all are called synchronously from Iterate().
class NodeObserver {
 public:
  virtual ~NodeObserver() = default;
  // Before the message goes out; `durable` is the node's log as persisted.
  virtual void OnSend(consensus::NodeId /*node*/, const consensus::Message& /*m*/,
                      const SimLogStorage& /*durable*/) {}
  virtual void OnReceive(consensus::NodeId /*node*/, const consensus::Message& /*m*/) {}
  // Before a Ready is persisted; `log` still holds the log before it.
  virtual void OnPersist(consensus::NodeId /*node*/, const std::vector<consensus::Entry>& /*entries*/,
                         const std::optional<consensus::HardState>& /*hs*/,
                         const SimLogStorage& /*log*/) {}
  virtual void OnApplied(consensus::NodeId /*node*/, const consensus::Entry& /*entry*/,
                         const std::vector<AppliedCommand>& /*commands*/,
                         const KvStateMachine& /*sm*/) {}
  virtual void OnSoftState(consensus::NodeId /*node*/, const consensus::SoftState& /*ss*/,
                           consensus::Term /*term*/) {}
  // A snapshot received from the leader became this node's state machine.
  virtual void OnSnapshotInstalled(consensus::NodeId /*node*/, const consensus::SnapshotMeta& /*meta*/,
                                   const KvStateMachine& /*sm*/) {}
  // The node took a snapshot of its state machine and compacted its log.
  virtual void OnCompacted(consensus::NodeId /*node*/, const consensus::SnapshotMeta& /*meta*/,
                           consensus::Index /*first_index*/) {}
  virtual void OnClientRequest(consensus::NodeId /*node*/, const Command& /*c*/) {}
  virtual void OnClientReply(consensus::NodeId /*node*/, const Reply& /*r*/) {}
};

// Planted bugs, for proving that the simulator catches them.
struct DriverBugs {
  // Sends a Ready's messages before persisting its entries and hard state.
  bool send_before_persist = false;
  // The leader answers reads from its own state at once, without ReadIndex.
  bool reads_without_read_index = false;
};

struct DriverOptions {
  consensus::NodeId id = consensus::kNoNode;
  // The bootstrap voters (Config.voters): the group as of an empty log.
  // Empty for a node waiting to be added to a running group.
  std::vector<consensus::NodeId> members;
  // Senders with ids from here on are clients; below, peers.
  uint64_t client_id_min = 1000;
  // Raft's settings; id, voters and applied are filled in by Start.
  consensus::Config raft;
  // One entry carries at most this many writes / bytes (beyond: a second
  // proposal in the same iteration, as the server does).
  size_t batch_commands_max = 256;
  uint64_t batch_bytes_max = 64u << 10;
  // Requests accepted and not yet answered; beyond, new ones get kBusy.
  size_t pending_requests_max = 4096;
  // Ready rounds per iteration (the server's 4).
  int ready_rounds_max = 4;
  // Log compaction: once this many entries were applied since the last
  // snapshot, take one (the state machine's bytes) and drop the log below
  // it, keeping compact_keep_entries entries so that a slightly lagging
  // follower needs no snapshot. 0: never (also without a SnapshotStore).
  uint64_t compact_every_entries = 0;
  uint64_t compact_keep_entries = 0;
  // Take this iteration's ticks before stepping any message (the leader
  // lease's clock assumption, consensus/raft.h); the server ticks after.
  bool tick_before_poll = false;
  DriverBugs bugs;
};

struct DriverStats {
  uint64_t proposals = 0;
  uint64_t entries_applied = 0;
  uint64_t commands_executed = 0;
  uint64_t commands_deduplicated = 0;  // Answered from the session table.
  uint64_t reads_served = 0;
  uint64_t replies = 0;
  uint64_t malformed_messages = 0;
  uint64_t leadership_losses = 0;  // FailAllPending calls.
  uint64_t snapshots_installed = 0;
  uint64_t compactions = 0;
};

class NodeDriver {
 public:
  // Starts (or restarts) a node over its durable parts: `log` (fresh or just
  // recovered), `sm` and `snapshots` (may be null: no snapshots; else the
  // store `log` reads). All pointers must outlive the driver. Finishes a
  // snapshot install a crash interrupted (resets the log to the snapshot).
  // Errors are Raft::Create's (e.g. a state machine ahead of the log's
  // commit).
  static absl::StatusOr<std::unique_ptr<NodeDriver>> Start(const DriverOptions& options,
                                                          SimLogStorage* log, KvStateMachine* sm,
                                                          SnapshotStore* snapshots,
                                                          transport::Transport* transport,
                                                          NodeObserver* observer);
  ~NodeDriver();
  NodeDriver(const NodeDriver&) = delete;
  NodeDriver& operator=(const NodeDriver&) = delete;

  // One loop iteration with `ticks` ticks of this node's clock. OK; Aborted
  // when the armed crash point fired (the node is now dead: destroy it);
  // any other error is fatal for the node (a storage error, an entry that
  // does not decode) and is returned again by every later call.
  absl::Status Iterate(int ticks);

  // The `events`-th event from now (>= 1) is a power failure; the image
  // that survives is taken in `mode`.
  void ArmCrash(uint64_t events, pmemlog::CrashMode mode);
  void DisarmCrash() { crash_.armed = crash_.fired; }
  bool crash_armed() const { return crash_.armed; }
  bool crashed() const { return crash_.fired; }
  // After Aborted: what the region holds after the power failure.
  std::vector<uint8_t> TakeCrashImage();

  const consensus::Raft& raft() const { return *raft_; }
  consensus::Raft& mutable_raft() { return *raft_; }
  const DriverStats& stats() const { return stats_; }
  // Requests accepted and not yet answered.
  size_t pending_requests() const { return pending_; }

 private:
  struct Waiter {
    uint64_t client = 0;
    uint64_t seq = 0;
  };
  struct Proposal {
    consensus::Term term = 0;
    std::vector<Waiter> waiters;  // One per command, in command order.
  };
  struct PendingRead {
    Waiter waiter;
    std::string key;
  };
  struct ReadGroup {
    consensus::Index index = 0;
    std::vector<PendingRead> reads;
  };
  struct CrashPoint {
    bool armed = false;
    bool fired = false;
    uint64_t remaining = 0;
    pmemlog::CrashMode mode = pmemlog::CrashMode::kPersistedOnly;
    std::vector<uint8_t> image;
  };

  NodeDriver(const DriverOptions& options, SimLogStorage* log, KvStateMachine* sm,
             SnapshotStore* snapshots, transport::Transport* transport, NodeObserver* observer);

  void OnMessage(transport::NodeId from, absl::Span<const uint8_t> bytes);
  void HandleRequest(uint64_t from, Command command);
  void FlushWriteBatch();
  void IssueReads();
  absl::Status ProcessReady();
  void StageChunks(const std::vector<consensus::SnapshotChunk>& chunks);
  absl::Status InstallSnapshot(const consensus::SnapshotMeta& meta);
  absl::Status MaybeCompact();
  // Sends the Ready's messages; false if the crash point fired.
  bool SendMessages(const std::vector<consensus::Message>& messages);
  absl::Status ApplyCommitted(const consensus::Entry& entry);
  void ServeReads();
  void FailAllPending();
  void Answer(const Waiter& w, ReplyStatus status, const CommandResult& result = {});
  // A reply to a request that was never counted as pending.
  void Reject(uint64_t client, uint64_t seq, ReplyStatus status);
  void SendReply(const Reply& reply);
  uint64_t LeaderHint() const;
  // Counts one event against the crash point; true once it has fired.
  bool CrashEvent();
  absl::Status Fatal(absl::Status status);

  const DriverOptions options_;
  SimLogStorage* const log_;
  KvStateMachine* const sm_;
  SnapshotStore* const snapshots_;
  transport::Transport* const transport_;
  NodeObserver* const observer_;
  std::unique_ptr<consensus::Raft> raft_;
  consensus::SoftState soft_state_;

  std::vector<Command> batch_;
  std::vector<Waiter> batch_waiters_;
  uint64_t batch_bytes_ = 0;
  std::map<consensus::Index, Proposal> proposals_;
  consensus::Index last_proposed_index_ = 0;

  std::vector<PendingRead> new_reads_;
  std::map<uint64_t, ReadGroup> reads_by_context_;
  std::deque<ReadGroup> confirmed_reads_;
  uint64_t next_read_context_ = 1;

  // A snapshot being received (volatile: a restarted node gets it again).
  bool staging_ = false;
  consensus::SnapshotMeta staged_meta_;
  std::string staged_;

  size_t pending_ = 0;
  CrashPoint crash_;
  absl::Status fatal_;
  DriverStats stats_;
};

}  // namespace blizzard::sim

#endif  // BLIZZARD_TOOLS_SIM_NODE_DRIVER_H_
