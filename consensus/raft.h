// Raft as a pure, deterministic state machine (in the style of etcd's raft).
//
// Inputs:  Tick() (time), Step(msg) (a message from a peer), Propose(data)
//          (a client batch), ReadIndex(ctx) (a linearizable read request),
//          ProposeMembershipChange(change), TransferLeadership(target).
// Outputs: one Ready at a time. The driver handles its parts IN THIS ORDER:
//   1. snapshot_chunks (followers): write each chunk of a snapshot being
//      received to a staging area (see "Snapshots" below).
//   2. snapshot (followers): install the fully received snapshot: the
//      staged bytes become the state machine, storage's LastSnapshot()
//      reports it, and the log is reset to it (pmemlog Reset(index, term):
//      FirstIndex() = index + 1, LastIndex() = index). Durable before 3.
//   3. hard_state / entries: persist these (entries replace any stored
//      entry at an index >= entries.front().index), after 2.
//   4. messages: send these only AFTER 2-3 are durable (staged chunks
//      need not be: see "Snapshots"). An acknowledgement in them never
//      covers an entry that 2-3 do not leave durable: acks queued for
//      entries that a later input of the same cycle replaced (a newer
//      leader's conflicting append) or discarded (a snapshot) are dropped.
//   5. committed: apply these, in order, to the state machine (kNoop and
//      kConfig entries are no-ops for the state machine: Raft has already
//      acted on kConfig entries).
//   6. read_states: serve each read once the state machine has applied up
//      to read_state.index.
//   soft_state / membership are informational (who leads; whom to connect
//   to) and may be looked at any time.
//   Then call Advance(ready).
//
// No I/O, threads, clocks or randomness of its own: the randomized election
// timeout comes from a seeded generator given in Config.
//
// Calling discipline (one thread): inputs in any order; `if (HasReady()) {
// rd = GetReady(); handle 1-6; Advance(rd); }`. Exactly one Ready may be
// outstanding: GetReady before the previous Advance is a programmer error
// (assertion). Inputs may be fed between GetReady and Advance; their
// effects come in the next Ready.
//
// The leader counts its own entries as persisted when it appends them: its
// commit index only leaves through Ready.messages (sent after Ready.entries
// are durable) and Ready.committed (applied after the same), so nothing
// observable depends on an entry that is not yet durable on the leader.
//
// Storage errors (LogStorage returning DataLoss...) make the Raft inert:
// status() reports the error, every input returns it, HasReady() is false.
// The node must stop serving; nothing decided on unreadable data leaves.
//
// ---- Snapshots and log compaction (etcd-style, streamed in chunks) ----
//
// Compaction is the driver's decision and needs no call into Raft (see
// storage.h): after an Advance, take a snapshot of the state machine with
// the metadata SnapshotMetaForApplied() returns (plus its size), keep it
// durably so that LogStorage::LastSnapshot() reports it and
// LogStorage::SnapshotChunk() reads it, then compact the log up to at most
// its index. A leader whose follower needs compacted entries streams
// LastSnapshot() to it in kSnapshot messages of Config.snapshot_chunk_bytes,
// at most snapshot_inflight_chunks_max unacknowledged, resent from the
// follower's offset on a gap and restarted after snapshot_stall_ticks
// without progress (with a newer snapshot if storage has one by then).
// Raft reads each chunk through SnapshotChunk() when it sends it; the bytes
// of a snapshot must not change while LastSnapshot() reports it.
//
// On the follower, Raft accepts chunks in order from the leader of its
// current term only (stale terms, other leaders, gaps and duplicates are
// answered or dropped, never handed out) and hands each accepted chunk out
// once in Ready.snapshot_chunks, in order:
//   - a chunk with offset 0 starts a new staged snapshot (discard any other
//     staged bytes);
//   - a chunk with offset > 0 follows the bytes staged so far for the same
//     (meta.index, meta.term), exactly at their end.
// A Ready that carries `snapshot` carries exactly the chunks leading up to
// it (a newer transfer's chunks come in a later Ready), so its last chunk
// completes the staged bytes of the snapshot to install.
// The staged bytes need not be durable chunk by chunk (a restarted node
// receives the snapshot again from offset 0), but must be before step 2.
// When the last chunk is accepted, Ready.snapshot asks for the install
// (step 2) and Ready.hard_state carries commit = snapshot index; the answer
// to the leader is in the same Ready's messages, so it leaves after the
// install. Until Advance, Raft answers as if the install were done.
//
// Installing must survive a crash at any point: make the state machine the
// staged snapshot and LastSnapshot() report it atomically (e.g. rename),
// then reset the log. If the node crashed between the two, Create reports
// FailedPrecondition ("finish installing"): the driver resets the log to
// LastSnapshot() (index, term) and calls Create again.
//
// A restarted node resumes from its state machine (Config.applied >=
// LastSnapshot().index, e.g. the installed snapshot) plus its log; commit
// is at least the snapshot's index.
//
// ---- Membership changes (single-server, Raft thesis 4.1-4.3) ----
//
// One node is added (as a learner or a voter), promoted (learner to voter)
// or removed per change. A change is a kConfig entry carrying the whole new
// membership; every node uses the LATEST membership in its log, committed
// or not, from the moment it appends the entry (and reverts if the entry is
// truncated). With one change at a time, any majority of the old voters
// and any majority of the new ones intersect, so two leaders of one term
// cannot arise from the two configurations. Hence a leader refuses a change
// while an earlier one is uncommitted, and, to close the known hole in
// single-server changes (Ongaro, raft-dev 2015), until it has committed an
// entry of its own term. Why not joint consensus: one quorum rule at a time
// is simpler to verify and test, learners give the catch-up phase joint
// consensus would otherwise be needed for, and the group changes one node
// at a time anyway.
//
// A leader removed by a change keeps leading until the change commits,
// then steps down (handing leadership to an up-to-date voter with
// kTimeoutNow). Learners never campaign, nor do removed nodes once they
// know their removal committed. (Until then a removed node that votes in
// the committed membership still campaigns, counting votes in the new
// one: a leader that appended its own removal and lost leadership before
// committing it may hold the only log that can finish the change, and
// the voters left may need its vote, which it gives no shorter log.)
// Messages from nodes outside this node's membership are accepted (a node
// may lag behind the group's membership; a new leader may be unknown to
// it); responses from non-members are ignored. Stale vote requests and
// stale leaders' messages are answered with the current term (the Raft
// paper's rule; etcd stays silent without check_quorum/pre_vote), since
// nodes whose views of the membership differ may otherwise never exchange
// a message that tells one of them the other's term. Ready.membership
// reports every change of the active membership (membership() gives the
// initial one), so the driver knows whom to connect to. Snapshots carry
// the membership at their index.
//
// ---- Leadership transfer ----
//
// TransferLeadership(target): the leader stops accepting proposals and
// membership changes, brings the target's log up to date, and sends it
// kTimeoutNow; the target campaigns at once, skipping pre-vote, and its
// vote requests carry `transfer` so voters do not ignore them for having a
// live leader (check_quorum's stickiness). The transfer is abandoned after
// election_timeout_ticks (proposals are accepted again).
//
// ---- Leader lease reads (Config.lease_reads, off by default) ----
//
// With check_quorum, a follower does not vote for another candidate within
// election_timeout_ticks (its own ticks) of hearing from its leader. A
// leader that has heard, from a quorum of voters, answers to heartbeats it
// sent less than election_timeout_ticks - lease_drift_margin_ticks of ITS
// ticks ago therefore knows no other leader can exist yet, and serves
// ReadIndex at once at its commit index, without a heartbeat round.
// Clock assumption (the driver's obligation): every node calls Tick() at
// the same nominal period, with relative drift rate at most rho, and catches
// up missed ticks (by a monotonic clock) before it steps messages or calls
// ReadIndex, so a stalled process never serves a read on an old clock.
// The margin must cover one tick of granularity plus rho *
// election_timeout_ticks (e.g. 10-tick timeouts, drift < 10%: margin 2).
// A node that (re)starts ignores vote requests for election_timeout_ticks
// (it may have promised a lease before it crashed). A leader that sent
// kTimeoutNow stops using its lease for the rest of its term. If the
// assumption may not hold, leave lease_reads off: ReadIndex is safe
// without any clock assumption.
//
// ---- The driver's obligations, in one list ----
//
//  1. Handle each Ready in the order above; Advance only after all of it.
//  2. LogStorage (storage.h) reflects everything persisted; to use
//     snapshots it implements LastSnapshot() and SnapshotChunk() over a
//     durably kept snapshot whose bytes do not change while reported.
//  3. Compact only up to min(applied index, kept snapshot's index) + 1,
//     after Advance, with the snapshot taken at SnapshotMetaForApplied().
//  4. Stage Ready.snapshot_chunks as described; install Ready.snapshot
//     (state machine and LastSnapshot() atomically, then reset the log)
//     before persisting that Ready's entries and sending its messages. On
//     restart after a crash mid-install, finish it when Create says so.
//  5. Config.applied on restart is the state machine's applied index, at
//     least the kept snapshot's index.
//  6. Step messages from any authenticated node id, members or not; apply
//     kConfig entries as no-ops; connect to the members Ready.membership
//     (or membership() at start) names.
//  7. A node joining a running group starts with no voters (or others),
//     and is added with ProposeMembershipChange on the leader (learner
//     first, promoted once caught up: match_index()).
//  8. With lease_reads: ticks at a common nominal rate from a monotonic
//     clock, missed ticks delivered before stepping messages or calling
//     ReadIndex, and a margin that covers the drift (see above).
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
  // The bootstrap membership: the group's members as of an empty log (a
  // new group). A snapshot or a kConfig entry in the log overrides it. A
  // node waiting to be added to a running group starts with no voters (or
  // with members other than itself): it never campaigns and learns the
  // membership from the leader's log or snapshot.
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;
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
  // Snapshot streaming (see above): bytes per kSnapshot chunk (<=
  // kSnapshotChunkBytesMax), chunks sent but unacknowledged per follower,
  // and leader ticks without progress before a transfer is restarted.
  uint64_t snapshot_chunk_bytes = 1u << 20;
  int snapshot_inflight_chunks_max = 4;
  int snapshot_stall_ticks = 20;
  // Leader lease reads (see above). Requires check_quorum; the margin must
  // be in [1, election_timeout_ticks).
  bool lease_reads = false;
  int lease_drift_margin_ticks = 2;
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

// Part of a snapshot received from the leader, to stage (see above).
struct SnapshotChunk {
  SnapshotMeta meta;  // Which snapshot; meta.bytes is its total size.
  uint64_t offset = 0;
  std::string data;
  bool last() const { return offset + data.size() == meta.bytes; }
  bool operator==(const SnapshotChunk&) const = default;
};

struct Ready {
  std::optional<SoftState> soft_state;  // Set when it changed.
  std::optional<HardState> hard_state;  // Set when it must be persisted.
  std::vector<Entry> entries;           // To persist before sending.
  std::vector<Message> messages;        // To send after persisting.
  std::vector<Entry> committed;         // To apply, in order.
  std::vector<ReadState> read_states;
  // The active membership, set when it changed.
  std::optional<Membership> membership;
  // Followers: chunks to stage, in order, then the snapshot to install.
  std::vector<SnapshotChunk> snapshot_chunks;
  std::optional<SnapshotMeta> snapshot;
};

enum class MembershipChangeType : uint8_t {
  kAddLearner,  // A non-member joins as a learner.
  kAddVoter,    // A learner is promoted, or a non-member joins as a voter.
  kRemoveNode,  // A voter or learner leaves (the leader itself included).
};

struct MembershipChange {
  MembershipChangeType type = MembershipChangeType::kAddLearner;
  NodeId node = kNoNode;
};

class Raft {
 public:
  // `storage` must outlive the Raft and reflect everything persisted so far.
  // Errors: InvalidArgument (config), DataLoss (storage contradicts
  // itself), FailedPrecondition (entries compacted but not in the state
  // machine, or a snapshot not yet installed in the log: see above).
  static absl::StatusOr<std::unique_ptr<Raft>> Create(const Config& config,
                                                      const LogStorage* storage);
  ~Raft();

  void Tick();
  // InvalidArgument for a malformed message (ValidateMessage, wrong `to`,
  // a second leader claiming this node's term...); stale messages are
  // ignored with OK. Senders outside the membership are accepted (see
  // "Membership changes"): the transport authenticates peers.
  absl::Status Step(const Message& message);
  // FailedPrecondition("not leader") unless leader, or during a
  // leadership transfer. InvalidArgument if
  // data exceeds proposal_bytes_max, ResourceExhausted beyond
  // uncommitted_bytes_max. Returns the index the
  // entry will have; the caller learns the outcome from `committed` (same
  // index AND same term) or from a later entry replacing it.
  absl::StatusOr<Index> Propose(std::string data);
  // Requests a linearizable read point. FailedPrecondition unless leader.
  // The ReadState with this context appears in a later Ready once a quorum
  // has confirmed leadership (immediately with a single voter, or under a
  // valid leader lease with Config.lease_reads).
  // A new leader defers reads until it has committed an entry of its term
  // (its no-op): before that its commit index may be behind.
  // InvalidArgument for context 0 (reserved: "no read") or a context
  // already pending; ResourceExhausted beyond pending_reads_max. Reads
  // pending when leadership is lost are dropped: the driver fails them when
  // it sees soft_state.role leave kLeader. Batch the reads of one loop
  // iteration under one context: each call costs a heartbeat round.
  absl::Status ReadIndex(uint64_t context);
  // Campaign now (tests, tools), with a pre-vote round if configured.
  // No-op on a leader and on a node that is not a voter.
  void Campaign();

  // Proposes one membership change (see above); returns the index of its
  // kConfig entry, which takes effect at once on this leader. Errors:
  // FailedPrecondition if not leader, during a leadership transfer, before
  // this leader committed an entry of its term, while an earlier change is
  // uncommitted, or when removing the last voter; InvalidArgument for node
  // 0, adding a member again (as the same kind), removing a non-member;
  // ResourceExhausted beyond kMembersMax members. Promote a learner only
  // once it has caught up (match_index()), or the group may stall waiting
  // for it to count in a quorum.
  absl::StatusOr<Index> ProposeMembershipChange(const MembershipChange& change);

  // Hands leadership to voter `target` (see above). OK and nothing happens
  // if target is this leader or already the transfer's target; another
  // target replaces the pending one. FailedPrecondition unless leader;
  // InvalidArgument unless target is a voter. While a transfer is pending,
  // Propose and ProposeMembershipChange fail with FailedPrecondition.
  absl::Status TransferLeadership(NodeId target);

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
  // The active membership (the latest in the log).
  const Membership& membership() const;
  // Leader only: the pending transfer's target, kNoNode if none.
  NodeId transfer_target() const;
  // Leader only: the index up to which `peer`'s log is known to match
  // (0 if unknown, not a member, or not leader).
  Index match_index(NodeId peer) const;
  // The metadata of a snapshot of the state machine as of applied_index()
  // (index, its term, the membership in force there; bytes = 0 for the
  // driver to fill). FailedPrecondition while a Ready is outstanding (call
  // it after Advance), when nothing is applied, or when the membership at
  // the applied index is unknown (a joining node that has not yet applied
  // an entry of the group's membership).
  absl::StatusOr<SnapshotMeta> SnapshotMetaForApplied() const;
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
