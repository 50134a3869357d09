// Raft as a pure, deterministic state machine (in the style of etcd's raft).
//
// Inputs:  Tick() (time), Step(msg) (a message from a peer), Propose(data)
//          (a client batch), ReadIndex(ctx) (a linearizable read request).
// Outputs: one Ready at a time, holding
//          - hard_state / entries: persist these FIRST (entries replace any
//            stored entry at an index >= entries.front().index),
//          - messages: send these only AFTER the above is durable,
//          - committed: apply these, in order, to the state machine,
//          - read_states: reads whose index is now safe to serve once the
//            state machine has applied up to read_state.index.
//          then call Advance(ready).
//
// No I/O, threads, clocks or randomness of its own: the randomized election
// timeout comes from a seeded generator given in Config.
//
// Calling discipline (one thread): Tick/Step/Propose/ReadIndex/Campaign in
// any order; `if (HasReady()) { rd = GetReady(); persist; send; apply;
// Advance(rd); }`. Exactly one Ready may be outstanding: GetReady before the
// previous Advance is a programmer error (assertion). Inputs may be fed
// between GetReady and Advance; their effects come in the next Ready.
//
// The leader counts its own entries as persisted when it appends them: its
// commit index only leaves through Ready.messages (sent after Ready.entries
// are durable) and Ready.committed (applied after the same), so nothing
// observable depends on an entry that is not yet durable on the leader.
//
// Storage errors (LogStorage returning DataLoss...) make the Raft inert:
// status() reports the error, every input returns it, HasReady() is false.
// The node must stop serving; nothing decided on unreadable data leaves.
#ifndef BLIZZARD_CONSENSUS_RAFT_H_
#define BLIZZARD_CONSENSUS_RAFT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/storage.h"
#include "consensus/types.h"

namespace blizzard::consensus {

enum class Role : uint8_t {
  kFollower,
  kCandidate,
  kLeader,
  // Campaigning with pre-votes (Config.pre_vote): term and vote unchanged.
  kPreCandidate,
};
const char* RoleName(Role role);

struct Config {
  NodeId id = kNoNode;
  std::vector<NodeId> voters;  // All members, including `id`.
  // Election timeout is drawn uniformly from
  // [election_timeout_ticks, 2 * election_timeout_ticks).
  int election_timeout_ticks = 10;
  int heartbeat_interval_ticks = 1;
  uint64_t random_seed = 1;
  // Entries already applied to the state machine (from the data pool), so a
  // restarted node does not hand them out again.
  Index applied = 0;
  // Flow control: limits on what one append message carries and how many
  // appends may be in flight to one follower (pipelining).
  uint64_t append_bytes_max = 1u << 20;
  int inflight_appends_max = 64;
  // Bytes of committed entries handed out in one Ready.
  uint64_t committed_bytes_max = 16u << 20;
  // Entries in one append message (<= kMessageEntriesMax).
  int append_entries_max = 4096;
  // Largest data of one proposal (<= kEntryDataBytesMax).
  uint64_t proposal_bytes_max = 8u << 20;
  // The leader refuses proposals (ResourceExhausted) while this many bytes
  // (EntrySizeBytes) of its own proposals are uncommitted, bounding memory
  // when followers cannot keep up. One proposal is always admitted.
  uint64_t uncommitted_bytes_max = 64u << 20;
  // ReadIndex requests waiting for their confirmation, at most.
  int pending_reads_max = 4096;
  // Campaign with a pre-vote round first (Raft thesis 9.6), so a node that
  // was partitioned away cannot depose a working leader when it returns.
  bool pre_vote = true;
  // A leader that has not heard from a quorum within an election timeout
  // steps down; followers that heard from a leader within the minimum
  // election timeout ignore vote requests (leader stickiness).
  bool check_quorum = true;
  // When the commit index advances, send every follower an append carrying
  // it at once (etcd's behaviour). Off, the commit index rides on the next
  // append or heartbeat (the Raft paper's behaviour): followers apply up to
  // heartbeat_interval_ticks later, but each entry costs two messages per
  // follower instead of four (measured: raft_benchmark).
  bool broadcast_commit = false;
};

struct ReadState {
  Index index = 0;       // Serve the read once applied >= index.
  uint64_t context = 0;  // As given to ReadIndex.
};

struct SoftState {
  NodeId leader = kNoNode;
  Role role = Role::kFollower;
  bool operator==(const SoftState&) const = default;
};

struct Ready {
  std::optional<SoftState> soft_state;  // Set when it changed.
  std::optional<HardState> hard_state;  // Set when it must be persisted.
  std::vector<Entry> entries;           // To persist before sending.
  std::vector<Message> messages;        // To send after persisting.
  std::vector<Entry> committed;         // To apply, in order.
  std::vector<ReadState> read_states;
};

class Raft {
 public:
  // `storage` must outlive the Raft and reflect everything persisted so far.
  static absl::StatusOr<std::unique_ptr<Raft>> Create(const Config& config,
                                                      const LogStorage* storage);
  ~Raft();

  void Tick();
  // InvalidArgument for a malformed message (wrong `to`, unknown sender...);
  // stale messages are ignored with OK.
  absl::Status Step(const Message& message);
  // FailedPrecondition("not leader") unless leader. InvalidArgument if
  // data exceeds proposal_bytes_max, ResourceExhausted beyond
  // uncommitted_bytes_max. Returns the index the
  // entry will have; the caller learns the outcome from `committed` (same
  // index AND same term) or from a later entry replacing it.
  absl::StatusOr<Index> Propose(std::string data);
  // Requests a linearizable read point. FailedPrecondition unless leader.
  // The ReadState with this context appears in a later Ready once a quorum
  // has confirmed leadership (immediately with a single voter).
  // A new leader defers reads until it has committed an entry of its term
  // (its no-op): before that its commit index may be behind.
  // InvalidArgument for context 0 (reserved: "no read") or a context
  // already pending; ResourceExhausted beyond pending_reads_max. Reads
  // pending when leadership is lost are dropped: the driver fails them when
  // it sees soft_state.role leave kLeader. Batch the reads of one loop
  // iteration under one context: each call costs a heartbeat round.
  absl::Status ReadIndex(uint64_t context);
  // Campaign now (tests, tools), with a pre-vote round if configured.
  // No-op on a leader.
  void Campaign();

  bool HasReady() const;
  Ready GetReady();
  void Advance(const Ready& ready);

  // Observers.
  NodeId id() const;
  Role role() const;
  NodeId leader() const;
  Term term() const;
  Index commit_index() const;
  Index applied_index() const;
  Index last_index() const;
  // Term of entry i of this node's log (persisted or not), for i in
  // [first index - 1, last_index()]; OutOfRange outside. Lets a driver
  // check that its proposal (index, term) is still in the log.
  absl::StatusOr<Term> TermAt(Index i) const;
  // OK, or the storage error that made this Raft inert.
  absl::Status status() const;
  // One line: id, role, term, vote, leader, indices (for test failures).
  std::string DebugString() const;

 private:
  class Impl;
  explicit Raft(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_RAFT_H_
