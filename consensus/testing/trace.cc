#include "consensus/testing/trace.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace blizzard::consensus::testing {

std::string FormatEntry(const Entry& e) {
  std::string out = absl::StrFormat("%d/%d ", e.index, e.term);
  switch (e.type) {
    case EntryType::kNormal:
      return absl::StrCat(out, "normal \"", absl::CHexEscape(e.data), "\"");
    case EntryType::kNoop:
      return absl::StrCat(out, "noop");
    case EntryType::kConfig: {
      absl::StatusOr<Membership> m = DecodeMembership(e.data);
      return absl::StrCat(out, "config ",
                          m.ok() ? DebugString(*m) : "<undecodable>");
    }
  }
  return absl::StrCat(out, "unknown");
}

namespace {

std::string FormatEntries(const std::vector<Entry>& entries) {
  std::vector<std::string> parts;
  parts.reserve(entries.size());
  for (const Entry& e : entries) parts.push_back(FormatEntry(e));
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

}  // namespace

std::string FormatMessage(const Message& m) {
  std::string out = absl::StrFormat("%d->%d %s t%d", m.from, m.to,
                                    MessageTypeName(m.type), m.term);
  switch (m.type) {
    case MessageType::kVote:
    case MessageType::kPreVote:
      absl::StrAppendFormat(&out, " last=%d/%d", m.index, m.log_term);
      if (m.transfer) absl::StrAppend(&out, " transfer");
      break;
    case MessageType::kVoteResponse:
    case MessageType::kPreVoteResponse:
      absl::StrAppend(&out, m.reject ? " rejected" : " granted");
      break;
    case MessageType::kAppend:
      absl::StrAppendFormat(&out, " prev=%d/%d commit=%d", m.index, m.log_term,
                            m.commit);
      if (!m.entries.empty()) {
        absl::StrAppend(&out, " entries=", FormatEntries(m.entries));
      }
      break;
    case MessageType::kAppendResponse:
      absl::StrAppendFormat(&out, " index=%d", m.index);
      if (m.reject) {
        absl::StrAppendFormat(&out, " rejected hint=%d/%d", m.reject_hint,
                              m.log_term);
      }
      break;
    case MessageType::kHeartbeat:
      absl::StrAppendFormat(&out, " commit=%d", m.commit);
      [[fallthrough]];
    case MessageType::kHeartbeatResponse:
      if (m.context != 0) absl::StrAppendFormat(&out, " ctx=%d", m.context);
      if (m.index != 0) absl::StrAppendFormat(&out, " sent_tick=%d", m.index);
      break;
    case MessageType::kSnapshot:
      absl::StrAppendFormat(&out, " snap=%d/%d bytes=[%d,%d) of %d %s",
                            m.index, m.log_term, m.snapshot_offset,
                            m.snapshot_offset + m.data.size(), m.snapshot_bytes,
                            DebugString(m.membership));
      break;
    case MessageType::kSnapshotResponse:
      absl::StrAppendFormat(&out, " snap=%d offset=%d", m.index,
                            m.snapshot_offset);
      if (m.reject) absl::StrAppend(&out, " gap");
      break;
    case MessageType::kTimeoutNow:
      break;
  }
  return out;
}

std::string FormatReady(const Ready& rd) {
  std::vector<std::string> lines;
  if (rd.soft_state.has_value()) {
    lines.push_back(absl::StrFormat("  State: %s, leader %d",
                                    RoleName(rd.soft_state->role),
                                    rd.soft_state->leader));
  }
  if (rd.hard_state.has_value()) {
    lines.push_back(absl::StrFormat("  HardState: term=%d vote=%d commit=%d",
                                    rd.hard_state->term, rd.hard_state->vote,
                                    rd.hard_state->commit));
  }
  if (rd.membership.has_value()) {
    lines.push_back(absl::StrCat("  Membership: ", DebugString(*rd.membership)));
  }
  for (const SnapshotChunk& c : rd.snapshot_chunks) {
    lines.push_back(absl::StrFormat("  Stage: snapshot %d/%d bytes=[%d,%d) of %d%s",
                                    c.meta.index, c.meta.term, c.offset,
                                    c.offset + c.data.size(), c.meta.bytes,
                                    c.last() ? " (last)" : ""));
  }
  if (rd.snapshot.has_value()) {
    lines.push_back(absl::StrFormat("  Install: snapshot %d/%d %s, %d bytes",
                                    rd.snapshot->index, rd.snapshot->term,
                                    DebugString(rd.snapshot->membership),
                                    rd.snapshot->bytes));
  }
  if (!rd.entries.empty()) {
    lines.push_back("  Entries:");
    for (const Entry& e : rd.entries) lines.push_back("    " + FormatEntry(e));
  }
  if (!rd.messages.empty()) {
    lines.push_back("  Messages:");
    for (const Message& m : rd.messages) lines.push_back("    " + FormatMessage(m));
  }
  if (!rd.committed.empty()) {
    lines.push_back("  Committed:");
    for (const Entry& e : rd.committed) lines.push_back("    " + FormatEntry(e));
  }
  for (const ReadState& rs : rd.read_states) {
    lines.push_back(absl::StrFormat("  ReadState: ctx=%d index=%d", rs.context,
                                    rs.index));
  }
  return absl::StrJoin(lines, "\n");
}

}  // namespace blizzard::consensus::testing
