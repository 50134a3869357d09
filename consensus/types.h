// Raft's vocabulary: entries, hard state, messages. Plain values, no I/O.
#ifndef BLIZZARD_CONSENSUS_TYPES_H_
#define BLIZZARD_CONSENSUS_TYPES_H_

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace blizzard::consensus {

using NodeId = uint64_t;  // 0 means "none".
using Term = uint64_t;
using Index = uint64_t;   // Log indices start at 1; 0 means "none".

inline constexpr NodeId kNoNode = 0;

// Limits on what one message may carry. The wire codec enforces the same
// numbers (codec.h re-exports them), Raft::Create checks its Config against
// them, and Raft::Step rejects messages beyond them.
inline constexpr uint32_t kMessageEntriesMax = 1u << 16;
inline constexpr uint64_t kEntryDataBytesMax = 32u << 20;

// Size accounting for every byte limit in this layer (append_bytes_max,
// committed_bytes_max, LogStorage::Entries' bytes_max...): the payload plus a
// fixed charge for the entry header, so that a run of empty entries (no-ops)
// is bounded too.
inline constexpr uint64_t kEntryOverheadBytes = 24;

// Largest chunk of a snapshot one kSnapshot message carries.
inline constexpr uint64_t kSnapshotChunkBytesMax = 32u << 20;
// Members (voters + learners) of one group, at most.
inline constexpr size_t kMembersMax = 255;

enum class EntryType : uint8_t {
  kNormal = 0,  // Opaque application data (a batch of encoded operations).
  kNoop = 1,    // Appended by a new leader to commit entries of past terms.
  // A membership change: `data` is EncodeMembership(the whole new
  // membership). Written and interpreted by Raft only; the driver applies it
  // as a no-op (DecodeMembership tells what it says, e.g. for logging).
  kConfig = 2,
};

struct Entry {
  Term term = 0;
  Index index = 0;
  EntryType type = EntryType::kNormal;
  std::string data;

  bool operator==(const Entry&) const = default;
};

inline uint64_t EntrySizeBytes(const Entry& entry) {
  return entry.data.size() + kEntryOverheadBytes;
}

// Who is in the group. Voters elect leaders and count for commits; learners
// receive the log and snapshots but never vote and are never counted
// (a node joins as a learner, catches up, and is then promoted).
// Both lists are sorted, without duplicates, disjoint, and hold no 0.
struct Membership {
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;

  bool IsVoter(NodeId id) const;
  bool IsLearner(NodeId id) const;
  bool IsMember(NodeId id) const { return IsVoter(id) || IsLearner(id); }
  bool operator==(const Membership&) const = default;
};

// The sortedness, uniqueness, disjointness and size rules above, plus at
// least one voter if `voters_required` (every membership in a log entry or a
// snapshot has one; only a node waiting to join starts with none).
// InvalidArgument naming the violation.
absl::Status ValidateMembership(const Membership& membership,
                                bool voters_required = true);
// The payload of a kConfig entry (WIRE_FORMAT.md, "Membership payload").
// Encode asserts that its input is valid; Decode accepts exactly the
// canonical encodings of valid memberships (InvalidArgument otherwise).
std::string EncodeMembership(const Membership& membership);
absl::StatusOr<Membership> DecodeMembership(absl::string_view data);

// Describes a snapshot: the state machine after applying every entry up to
// `index` (whose term is `term`), the membership in force at that index,
// and the size of the opaque snapshot bytes. Index 0 means "no snapshot".
struct SnapshotMeta {
  Index index = 0;
  Term term = 0;
  Membership membership;
  uint64_t bytes = 0;

  bool operator==(const SnapshotMeta&) const = default;
};

// What must be durable before a node answers any message (Raft's
// "persistent state on all servers", plus the commit index so that a
// restarted node knows what it may apply without waiting for a leader).
struct HardState {
  Term term = 0;
  NodeId vote = kNoNode;
  Index commit = 0;

  bool operator==(const HardState&) const = default;
};

enum class MessageType : uint8_t {
  kVote = 1,            // RequestVote.
  kVoteResponse = 2,
  kAppend = 3,          // AppendEntries (also heartbeats with no entries).
  kAppendResponse = 4,
  kHeartbeat = 5,       // Leader liveness + commit, carries read context.
  kHeartbeatResponse = 6,
  // Pre-vote (Raft thesis 9.6): a would-be candidate first asks whether it
  // could win at term + 1, without anyone changing term, so that a node
  // coming back from a partition does not depose a working leader.
  kPreVote = 7,
  kPreVoteResponse = 8,
  // Version 2 (snapshots, leadership transfer):
  kSnapshot = 9,           // One chunk of the leader's snapshot.
  kSnapshotResponse = 10,  // Progress of a snapshot transfer.
  kTimeoutNow = 11,        // Leadership transfer: campaign now.
};

struct Message {
  MessageType type = MessageType::kAppend;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  Term term = 0;
  // kAppend: index/log_term of the entry preceding `entries`.
  // kVote: the candidate's last index/term.
  // kAppendResponse: accepted: the follower's resulting last index (it
  //   holds the leader's entries up to there). Rejected: `index` = the
  //   request's index it could not match, `reject_hint` = the largest index
  //   <= min(index, its last index) whose term is <= the request's
  //   log_term, and `log_term` = its term there (etcd's fast back-off: the
  //   leader skips a whole term of mismatching entries per round trip).
  // kPreVote: term is the candidate's term + 1 (nobody adopts it).
  // kVoteResponse/kPreVoteResponse: `reject` = vote refused.
  // kHeartbeat: `index` = the leader's tick count when it sent it (only
  //   with Config.lease_reads, else 0); kHeartbeatResponse echoes it, so
  //   the leader knows when the follower last renewed its promise not to
  //   vote for anyone else (leader lease).
  // kSnapshot: index/log_term = the snapshot's last index and term,
  //   `snapshot_offset` = where `data` starts in the snapshot,
  //   `snapshot_bytes` = the snapshot's size, `membership` = its
  //   membership. The chunk is the last one iff it ends at snapshot_bytes.
  // kSnapshotResponse: index = the snapshot's index, `snapshot_offset` =
  //   how many bytes of it the follower holds (the next offset it expects);
  //   `reject` = a chunk arrived out of order, resume from snapshot_offset.
  //   The end of a transfer is acknowledged by a kAppendResponse with
  //   index = the snapshot's index, sent once it is installed.
  // kTimeoutNow: campaign now (leadership transfer), no fields.
  Index index = 0;
  Term log_term = 0;
  Index commit = 0;
  bool reject = false;
  Index reject_hint = 0;
  std::vector<Entry> entries;
  // Opaque read context (ReadIndex) echoed by heartbeat responses.
  uint64_t context = 0;
  // kVote only: the campaign follows a leadership transfer (kTimeoutNow),
  // so voters must not ignore it for having a live leader.
  bool transfer = false;
  // kSnapshot / kSnapshotResponse only (see above); zero/empty otherwise.
  uint64_t snapshot_offset = 0;
  uint64_t snapshot_bytes = 0;
  Membership membership;
  std::string data;

  bool operator==(const Message&) const = default;
};

const char* MessageTypeName(MessageType type);

// One-line human-readable forms for logs; PrintTo makes gtest use them.
// Entry data is shown by size only.
std::string DebugString(const Entry& entry);
std::string DebugString(const Message& message);
std::string DebugString(const HardState& hs);
std::string DebugString(const Membership& membership);
std::string DebugString(const SnapshotMeta& meta);
void PrintTo(const Entry& entry, std::ostream* os);
void PrintTo(const Message& message, std::ostream* os);
void PrintTo(const HardState& hs, std::ostream* os);
void PrintTo(const Membership& membership, std::ostream* os);
void PrintTo(const SnapshotMeta& meta, std::ostream* os);
bool IsValidMessageType(uint8_t type);
bool IsValidEntryType(uint8_t type);

// Checks what a message must satisfy whoever sent it, independent of cluster
// membership: a known type, nonzero and distinct from/to, a nonzero term,
// entries only in kAppend, contiguous from index + 1 with terms
// non-decreasing from log_term and at most term, known entry types, kConfig
// payloads that decode, the limits above; snapshot fields only in snapshot
// messages, a chunk within its snapshot, a valid snapshot membership;
// `transfer` only on kVote. InvalidArgument naming the first violation.
// Used by the codec on every decoded message and by Raft::Step.
absl::Status ValidateMessage(const Message& message);

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_TYPES_H_
