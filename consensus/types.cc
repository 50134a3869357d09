#include "consensus/types.h"

#include <algorithm>
#include <limits>
#include <ostream>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace blizzard::consensus {

const char* MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kVote:
      return "Vote";
    case MessageType::kVoteResponse:
      return "VoteResponse";
    case MessageType::kAppend:
      return "Append";
    case MessageType::kAppendResponse:
      return "AppendResponse";
    case MessageType::kHeartbeat:
      return "Heartbeat";
    case MessageType::kHeartbeatResponse:
      return "HeartbeatResponse";
    case MessageType::kPreVote:
      return "PreVote";
    case MessageType::kPreVoteResponse:
      return "PreVoteResponse";
    case MessageType::kSnapshot:
      return "Snapshot";
    case MessageType::kSnapshotResponse:
      return "SnapshotResponse";
    case MessageType::kTimeoutNow:
      return "TimeoutNow";
  }
  return "Unknown";
}

bool IsValidMessageType(uint8_t type) {
  return type >= static_cast<uint8_t>(MessageType::kVote) &&
         type <= static_cast<uint8_t>(MessageType::kTimeoutNow);
}

bool IsValidEntryType(uint8_t type) {
  return type <= static_cast<uint8_t>(EntryType::kConfig);
}

// ---- Membership ----

bool Membership::IsVoter(NodeId id) const {
  return std::binary_search(voters.begin(), voters.end(), id);
}

bool Membership::IsLearner(NodeId id) const {
  return std::binary_search(learners.begin(), learners.end(), id);
}

namespace {

constexpr uint8_t kMembershipVersion = 1;
constexpr size_t kMembershipHeaderBytes = 5;  // version u8, 2 x count u16.

absl::Status InvalidMembership(const char* what) {
  return absl::InvalidArgumentError(
      absl::StrFormat("invalid membership: %s", what));
}

bool StrictlyIncreasingNonzero(const std::vector<NodeId>& ids) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == kNoNode) return false;
    if (i > 0 && ids[i - 1] >= ids[i]) return false;
  }
  return true;
}

void PutLE(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t GetLE(absl::string_view in, size_t offset, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= static_cast<uint64_t>(static_cast<uint8_t>(in[offset + i])) << (8 * i);
  }
  return v;
}

}  // namespace

absl::Status ValidateMembership(const Membership& m, bool voters_required) {
  if (m.voters.size() + m.learners.size() > kMembersMax) {
    return InvalidMembership("too many members");
  }
  if (voters_required && m.voters.empty()) return InvalidMembership("no voter");
  if (!StrictlyIncreasingNonzero(m.voters) ||
      !StrictlyIncreasingNonzero(m.learners)) {
    return InvalidMembership("ids not sorted, duplicated or 0");
  }
  for (NodeId id : m.learners) {
    if (m.IsVoter(id)) return InvalidMembership("a learner is also a voter");
  }
  return absl::OkStatus();
}

std::string EncodeMembership(const Membership& m) {
  ABSL_RAW_CHECK(ValidateMembership(m).ok(), "encoding an invalid membership");
  std::string out;
  out.reserve(kMembershipHeaderBytes + 8 * (m.voters.size() + m.learners.size()));
  PutLE(out, kMembershipVersion, 1);
  PutLE(out, m.voters.size(), 2);
  PutLE(out, m.learners.size(), 2);
  for (NodeId id : m.voters) PutLE(out, id, 8);
  for (NodeId id : m.learners) PutLE(out, id, 8);
  return out;
}

absl::StatusOr<Membership> DecodeMembership(absl::string_view data) {
  if (data.size() < kMembershipHeaderBytes) return InvalidMembership("truncated");
  if (GetLE(data, 0, 1) != kMembershipVersion) {
    return InvalidMembership("unknown version");
  }
  const size_t voters = GetLE(data, 1, 2);
  const size_t learners = GetLE(data, 3, 2);
  // Counts are 16-bit: the product cannot overflow.
  if (data.size() != kMembershipHeaderBytes + 8 * (voters + learners)) {
    return InvalidMembership("length does not match the counts");
  }
  Membership m;
  size_t offset = kMembershipHeaderBytes;
  for (size_t i = 0; i < voters; ++i, offset += 8) {
    m.voters.push_back(GetLE(data, offset, 8));
  }
  for (size_t i = 0; i < learners; ++i, offset += 8) {
    m.learners.push_back(GetLE(data, offset, 8));
  }
  absl::Status valid = ValidateMembership(m);
  if (!valid.ok()) return valid;
  return m;
}

// ---- Debug strings ----

namespace {

const char* EntryTypeName(EntryType type) {
  switch (type) {
    case EntryType::kNormal:
      return "normal";
    case EntryType::kNoop:
      return "noop";
    case EntryType::kConfig:
      return "config";
  }
  return "unknown";
}

}  // namespace

std::string DebugString(const Entry& e) {
  return absl::StrFormat("{%d@t%d %s %dB}", e.index, e.term,
                         EntryTypeName(e.type), e.data.size());
}

std::string DebugString(const Membership& m) {
  std::string out = absl::StrCat("voters=(", absl::StrJoin(m.voters, ","), ")");
  if (!m.learners.empty()) {
    absl::StrAppend(&out, " learners=(", absl::StrJoin(m.learners, ","), ")");
  }
  return out;
}

std::string DebugString(const SnapshotMeta& s) {
  return absl::StrFormat("{%d@t%d %s %dB}", s.index, s.term,
                         DebugString(s.membership), s.bytes);
}

std::string DebugString(const Message& m) {
  std::string out = absl::StrFormat(
      "{%s %d->%d t%d index=%d log_term=%d commit=%d", MessageTypeName(m.type),
      m.from, m.to, m.term, m.index, m.log_term, m.commit);
  if (m.reject) absl::StrAppendFormat(&out, " reject hint=%d", m.reject_hint);
  if (m.context != 0) absl::StrAppendFormat(&out, " context=%d", m.context);
  if (m.transfer) absl::StrAppend(&out, " transfer");
  if (!m.entries.empty()) {
    absl::StrAppendFormat(&out, " entries=[%d..%d]", m.entries.front().index,
                          m.entries.back().index);
  }
  if (m.type == MessageType::kSnapshot ||
      m.type == MessageType::kSnapshotResponse) {
    absl::StrAppendFormat(&out, " offset=%d", m.snapshot_offset);
  }
  if (m.type == MessageType::kSnapshot) {
    absl::StrAppendFormat(&out, " chunk=%dB of %dB %s", m.data.size(),
                          m.snapshot_bytes, DebugString(m.membership));
  }
  return out + "}";
}

std::string DebugString(const HardState& hs) {
  return absl::StrFormat("{term=%d vote=%d commit=%d}", hs.term, hs.vote,
                         hs.commit);
}

void PrintTo(const Entry& e, std::ostream* os) { *os << DebugString(e); }
void PrintTo(const Message& m, std::ostream* os) { *os << DebugString(m); }
void PrintTo(const HardState& hs, std::ostream* os) { *os << DebugString(hs); }
void PrintTo(const Membership& m, std::ostream* os) { *os << DebugString(m); }
void PrintTo(const SnapshotMeta& s, std::ostream* os) { *os << DebugString(s); }

namespace {

bool IsResponse(MessageType type) {
  return type == MessageType::kVoteResponse ||
         type == MessageType::kAppendResponse ||
         type == MessageType::kHeartbeatResponse ||
         type == MessageType::kPreVoteResponse ||
         type == MessageType::kSnapshotResponse;
}

absl::Status Invalid(const Message& m, const char* what) {
  return absl::InvalidArgumentError(
      absl::StrFormat("invalid %s message from %d to %d: %s",
                      MessageTypeName(m.type), m.from, m.to, what));
}

absl::Status ValidateEntries(const Message& m) {
  if (m.entries.size() > kMessageEntriesMax) {
    return Invalid(m, "too many entries");
  }
  // Indices are index + 1 + k: guard the addition itself.
  if (m.index > std::numeric_limits<Index>::max() - m.entries.size()) {
    return Invalid(m, "entry indices overflow");
  }
  Term previous_term = m.log_term;
  for (size_t k = 0; k < m.entries.size(); ++k) {
    const Entry& e = m.entries[k];
    if (e.index != m.index + 1 + k) return Invalid(m, "entries not contiguous");
    if (e.term < previous_term) return Invalid(m, "entry terms decrease");
    if (e.term > m.term) return Invalid(m, "entry term beyond message term");
    if (!IsValidEntryType(static_cast<uint8_t>(e.type))) {
      return Invalid(m, "unknown entry type");
    }
    if (e.data.size() > kEntryDataBytesMax) return Invalid(m, "entry too large");
    if (e.type == EntryType::kConfig && !DecodeMembership(e.data).ok()) {
      return Invalid(m, "config entry without a valid membership");
    }
    previous_term = e.term;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateMessage(const Message& m) {
  if (!IsValidMessageType(static_cast<uint8_t>(m.type))) {
    return Invalid(m, "unknown type");
  }
  if (m.from == kNoNode || m.to == kNoNode) return Invalid(m, "node id 0");
  if (m.from == m.to) return Invalid(m, "sent to itself");
  if (m.term == 0) return Invalid(m, "term 0");
  if (m.reject && !IsResponse(m.type)) return Invalid(m, "reject on a request");
  if (!m.entries.empty() && m.type != MessageType::kAppend) {
    return Invalid(m, "entries outside an append");
  }
  if (m.transfer && m.type != MessageType::kVote) {
    return Invalid(m, "transfer flag outside a vote request");
  }
  const bool snapshot_type = m.type == MessageType::kSnapshot ||
                             m.type == MessageType::kSnapshotResponse;
  if (!snapshot_type && m.snapshot_offset != 0) {
    return Invalid(m, "snapshot offset outside a snapshot message");
  }
  if (m.type != MessageType::kSnapshot &&
      (m.snapshot_bytes != 0 || !m.data.empty() ||
       !m.membership.voters.empty() || !m.membership.learners.empty())) {
    return Invalid(m, "snapshot fields outside a snapshot chunk");
  }
  switch (m.type) {
    case MessageType::kAppend:
      if (m.log_term > m.term) return Invalid(m, "log_term beyond term");
      if (m.index == 0 && m.log_term != 0) {
        return Invalid(m, "log_term for index 0");
      }
      return ValidateEntries(m);
    case MessageType::kVote:
    case MessageType::kPreVote:
      // The candidate's last entry was written in an earlier term than the
      // one it campaigns for.
      if (m.log_term >= m.term) return Invalid(m, "log_term not below term");
      if (m.index == 0 && m.log_term != 0) {
        return Invalid(m, "log_term for index 0");
      }
      return absl::OkStatus();
    case MessageType::kSnapshot: {
      if (m.index == 0 || m.log_term == 0) {
        return Invalid(m, "snapshot without an index and term");
      }
      if (m.log_term > m.term) return Invalid(m, "log_term beyond term");
      if (m.data.size() > kSnapshotChunkBytesMax) {
        return Invalid(m, "snapshot chunk too large");
      }
      if (m.snapshot_offset > m.snapshot_bytes ||
          m.data.size() > m.snapshot_bytes - m.snapshot_offset) {
        return Invalid(m, "snapshot chunk beyond the snapshot's end");
      }
      // Every chunk but the single one of an empty snapshot makes progress.
      if (m.data.empty() && m.snapshot_bytes != 0) {
        return Invalid(m, "empty snapshot chunk");
      }
      absl::Status members = ValidateMembership(m.membership);
      if (!members.ok()) return Invalid(m, "snapshot membership invalid");
      return absl::OkStatus();
    }
    case MessageType::kSnapshotResponse:
      if (m.index == 0) return Invalid(m, "snapshot response without index");
      return absl::OkStatus();
    case MessageType::kAppendResponse:
      if (m.reject && m.reject_hint > m.index) {
        return Invalid(m, "reject_hint beyond the rejected index");
      }
      if (m.log_term > m.term) return Invalid(m, "log_term beyond term");
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

}  // namespace blizzard::consensus
