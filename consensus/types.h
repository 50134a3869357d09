// Raft's vocabulary: entries, hard state, messages. Plain values, no I/O.
#ifndef BLIZZARD_CONSENSUS_TYPES_H_
#define BLIZZARD_CONSENSUS_TYPES_H_

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/status.h"

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

enum class EntryType : uint8_t {
  kNormal = 0,  // Opaque application data (a batch of encoded operations).
  kNoop = 1,    // Appended by a new leader to commit entries of past terms.
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
  Index index = 0;
  Term log_term = 0;
  Index commit = 0;
  bool reject = false;
  Index reject_hint = 0;
  std::vector<Entry> entries;
  // Opaque read context (ReadIndex) echoed by heartbeat responses.
  uint64_t context = 0;

  bool operator==(const Message&) const = default;
};

const char* MessageTypeName(MessageType type);

// One-line human-readable forms for logs; PrintTo makes gtest use them.
// Entry data is shown by size only.
std::string DebugString(const Entry& entry);
std::string DebugString(const Message& message);
std::string DebugString(const HardState& hs);
void PrintTo(const Entry& entry, std::ostream* os);
void PrintTo(const Message& message, std::ostream* os);
void PrintTo(const HardState& hs, std::ostream* os);
bool IsValidMessageType(uint8_t type);
bool IsValidEntryType(uint8_t type);

// Checks what a message must satisfy whoever sent it, independent of cluster
// membership: a known type, nonzero and distinct from/to, a nonzero term,
// entries only in kAppend, contiguous from index + 1 with terms
// non-decreasing from log_term and at most term, known entry types, the
// limits above. InvalidArgument naming the first violation. Used by the
// codec on every decoded message and by Raft::Step.
absl::Status ValidateMessage(const Message& message);

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_TYPES_H_
