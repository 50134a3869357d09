#include "consensus/types.h"

#include <limits>
#include <ostream>

#include "absl/strings/str_format.h"

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
  }
  return "Unknown";
}

bool IsValidMessageType(uint8_t type) {
  return type >= static_cast<uint8_t>(MessageType::kVote) &&
         type <= static_cast<uint8_t>(MessageType::kPreVoteResponse);
}

bool IsValidEntryType(uint8_t type) {
  return type == static_cast<uint8_t>(EntryType::kNormal) ||
         type == static_cast<uint8_t>(EntryType::kNoop);
}

std::string DebugString(const Entry& e) {
  return absl::StrFormat("{%d@t%d %s %dB}", e.index, e.term,
                         e.type == EntryType::kNoop ? "noop" : "normal",
                         e.data.size());
}

std::string DebugString(const Message& m) {
  std::string out = absl::StrFormat(
      "{%s %d->%d t%d index=%d log_term=%d commit=%d", MessageTypeName(m.type),
      m.from, m.to, m.term, m.index, m.log_term, m.commit);
  if (m.reject) absl::StrAppendFormat(&out, " reject hint=%d", m.reject_hint);
  if (m.context != 0) absl::StrAppendFormat(&out, " context=%d", m.context);
  if (!m.entries.empty()) {
    absl::StrAppendFormat(&out, " entries=[%d..%d]", m.entries.front().index,
                          m.entries.back().index);
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

namespace {

bool IsResponse(MessageType type) {
  return type == MessageType::kVoteResponse ||
         type == MessageType::kAppendResponse ||
         type == MessageType::kHeartbeatResponse ||
         type == MessageType::kPreVoteResponse;
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
