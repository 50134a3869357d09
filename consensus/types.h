// Raft's vocabulary: entries, hard state, messages. Plain values, no I/O.
#ifndef BLIZZARD_CONSENSUS_TYPES_H_
#define BLIZZARD_CONSENSUS_TYPES_H_

#include <cstdint>
#include <string>
#include <vector>

namespace blizzard::consensus {

using NodeId = uint64_t;  // 0 means "none".
using Term = uint64_t;
using Index = uint64_t;   // Log indices start at 1; 0 means "none".

inline constexpr NodeId kNoNode = 0;

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
};

struct Message {
  MessageType type = MessageType::kAppend;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  Term term = 0;
  // kAppend: index/log_term of the entry preceding `entries`.
  // kVote: the candidate's last index/term.
  // kAppendResponse: the follower's resulting last index (or, rejected,
  //   the index it rejected) with `reject_hint` = its last index.
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

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_TYPES_H_
