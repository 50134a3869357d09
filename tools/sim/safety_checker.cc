#include "tools/sim/safety_checker.h"

#include <algorithm>
#include <limits>

#include <xxhash.h>

#include "absl/strings/str_format.h"

namespace blizzard::sim {
namespace {

constexpr uint64_t kAllBytes = std::numeric_limits<uint64_t>::max();

bool IsPreVote(consensus::MessageType t) {
  return t == consensus::MessageType::kPreVote || t == consensus::MessageType::kPreVoteResponse;
}

}  // namespace

uint64_t EntryContentHash(const consensus::Entry& e) {
  return XXH3_64bits_withSeed(e.data.data(), e.data.size(), static_cast<uint64_t>(e.type) + 1);
}

void SafetyChecker::Fail(std::string check, std::string detail) {
  violations_.push_back(Violation{std::move(check), std::move(detail)});
}

bool SafetyChecker::CheckLeader(consensus::NodeId node, consensus::Term term) {
  auto [it, inserted] = leaders_.emplace(term, node);
  if (!inserted && it->second != node) {
    Fail("election-safety",
         absl::StrFormat("nodes %d and %d are both leader of term %d", it->second, node, term));
    return false;
  }
  return true;
}

void SafetyChecker::OnNodeState(consensus::NodeId node, const consensus::Raft& raft) {
  if (raft.role() != consensus::Role::kLeader) return;
  const consensus::Term term = raft.term();
  if (!CheckLeader(node, term)) return;
  if (completeness_checked_.insert(term).second) {
    // Leader completeness: everything committed in an earlier term.
    for (consensus::Index i = 1; i <= committed_.size(); ++i) {
      const Committed& c = committed_[i - 1];
      if (c.commit_term >= term) continue;
      absl::StatusOr<consensus::Term> t = raft.TermAt(i);
      // Compacted away: then it is in the leader's state machine (a
      // snapshot holds committed entries only; state machine safety checks
      // that it holds the right ones).
      if (absl::IsOutOfRange(t.status()) && i <= raft.applied_index()) continue;
      if (!t.ok() || *t != c.entry_term) {
        Fail("leader-completeness",
             absl::StrFormat("node %d leads term %d without entry %d (term %d, committed in "
                             "term %d); its log has %s",
                             node, term, i, c.entry_term, c.commit_term,
                             t.ok() ? absl::StrFormat("term %d there", *t)
                                    : std::string(t.status().message())));
        return;
      }
    }
  }
  for (consensus::Index i = committed_.size() + 1; i <= raft.commit_index(); ++i) {
    absl::StatusOr<consensus::Term> t = raft.TermAt(i);
    if (absl::IsOutOfRange(t.status()) && i <= applied_.size()) {
      t = applied_[i - 1].term;  // Compacted on this leader, applied somewhere.
    }
    if (!t.ok()) {
      Fail("commit", absl::StrFormat("leader %d committed %d but cannot read its term: %s", node, i,
                                     t.status().message()));
      return;
    }
    committed_.push_back(Committed{*t, term});
  }
}

bool SafetyChecker::CheckLogEntry(consensus::NodeId node, const consensus::Entry& e,
                                  consensus::Term prev_term, const char* context) {
  const LogRecord record{EntryContentHash(e), prev_term};
  auto [it, inserted] = log_records_.emplace(std::make_pair(e.index, e.term), record);
  if (inserted) return true;
  if (it->second.content_hash != record.content_hash) {
    Fail("log-matching", absl::StrFormat("%s: node %d holds entry (index %d, term %d) with other "
                                         "content than another log",
                                         context, node, e.index, e.term));
    return false;
  }
  if (it->second.prev_term != prev_term) {
    Fail("log-matching",
         absl::StrFormat("%s: node %d holds entry (index %d, term %d) after an entry of term %d; "
                         "another log has term %d there",
                         context, node, e.index, e.term, prev_term, it->second.prev_term));
    return false;
  }
  return true;
}

void SafetyChecker::OnPersist(consensus::NodeId node, const std::vector<consensus::Entry>& entries,
                              const consensus::LogStorage& log) {
  if (entries.empty()) return;
  const consensus::Index first = entries.front().index;
  if (first < log.FirstIndex() || first > log.LastIndex() + 1) {
    Fail("log-matching", absl::StrFormat("node %d persists entry %d onto its log [%d, %d]", node,
                                         first, log.FirstIndex(), log.LastIndex()));
    return;
  }
  absl::StatusOr<consensus::Term> prev = log.TermAt(first - 1);
  if (!prev.ok()) {
    Fail("storage", absl::StrFormat("node %d: term of %d: %s", node, first - 1,
                                    prev.status().message()));
    return;
  }
  consensus::Term prev_term = *prev;
  consensus::Index expected = first;
  for (const consensus::Entry& e : entries) {
    if (e.index != expected || e.term < prev_term) {
      Fail("log-matching", absl::StrFormat("node %d persists a batch that is not contiguous with "
                                           "non-decreasing terms at %d",
                                           node, e.index));
      return;
    }
    if (!CheckLogEntry(node, e, prev_term, "persist")) return;
    prev_term = e.term;
    ++expected;
  }
}

void SafetyChecker::OnRecovered(consensus::NodeId node, const consensus::LogStorage& log) {
  const consensus::Index first = log.FirstIndex();
  const consensus::Index last = log.LastIndex();
  absl::StatusOr<std::vector<consensus::Entry>> entries = log.Entries(first, last + 1, kAllBytes);
  absl::StatusOr<consensus::Term> prev = log.TermAt(first - 1);
  if (!entries.ok() || !prev.ok()) {
    Fail("recovery", absl::StrFormat("node %d: the recovered log [%d, %d] is unreadable: %s", node,
                                     first, last,
                                     !entries.ok() ? entries.status().message()
                                                   : prev.status().message()));
    return;
  }
  consensus::Term prev_term = *prev;
  for (const consensus::Entry& e : *entries) {
    if (!log_records_.contains(std::make_pair(e.index, e.term))) {
      Fail("recovery", absl::StrFormat("node %d recovered entry (index %d, term %d) that was never "
                                       "persisted",
                                       node, e.index, e.term));
      return;
    }
    if (!CheckLogEntry(node, e, prev_term, "recovery")) return;
    prev_term = e.term;
  }
  const consensus::HardState hs = log.InitialHardState();
  const Promise& p = promises_[node];
  if (p.term > hs.term || (p.term == hs.term && hs.vote != p.vote)) {
    Fail("vote-durability",
         absl::StrFormat("node %d granted its vote to %d in term %d, but recovered with term %d "
                         "vote %d",
                         node, p.vote, p.term, hs.term, hs.vote));
  }
}

void SafetyChecker::OnSend(consensus::NodeId node, const consensus::Message& m,
                           const consensus::LogStorage& durable) {
  // Only a leader sends appends and heartbeats: every leader is seen here,
  // even one that loses its leadership within the iteration it won it.
  if ((m.type == consensus::MessageType::kAppend ||
       m.type == consensus::MessageType::kHeartbeat) &&
      !CheckLeader(node, m.term)) {
    return;
  }
  if (m.type == consensus::MessageType::kVoteResponse && !m.reject) {
    Promise& p = promises_[node];
    if (m.term == p.term && m.to != p.vote) {
      Fail("double-vote", absl::StrFormat("node %d granted votes to %d and %d in term %d", node,
                                          p.vote, m.to, m.term));
      return;
    }
    if (m.term > p.term) p = Promise{m.term, m.to};
  }
  if (!check_persist_before_send_ || IsPreVote(m.type)) return;
  const consensus::HardState hs = durable.InitialHardState();
  if (m.term > hs.term) {
    Fail("persist-before-send", absl::StrFormat("node %d sends %s of term %d with durable term %d",
                                                node, consensus::MessageTypeName(m.type), m.term,
                                                hs.term));
    return;
  }
  // A Ready may carry messages of an older term than its hard state (the
  // node moved on within the iteration): a vote of term T is durable if the
  // durable term is past T, or is T with that vote.
  const bool vote_given = (m.type == consensus::MessageType::kVoteResponse && !m.reject) ||
                          m.type == consensus::MessageType::kVote;
  const consensus::NodeId voted_for = m.type == consensus::MessageType::kVote ? node : m.to;
  if (vote_given && hs.term == m.term && hs.vote != voted_for) {
    Fail("persist-before-send",
         absl::StrFormat("node %d sends %s (vote %d, term %d) while its durable hard state has "
                         "term %d vote %d",
                         node, consensus::MessageTypeName(m.type), voted_for, m.term, hs.term,
                         hs.vote));
    return;
  }
  if (m.type == consensus::MessageType::kAppendResponse && !m.reject &&
      durable.LastIndex() < m.index) {
    Fail("persist-before-send",
         absl::StrFormat("node %d acknowledges index %d (term %d) with a durable log ending at %d",
                         node, m.index, m.term, durable.LastIndex()));
  }
}

void SafetyChecker::OnApplied(consensus::NodeId node, const consensus::Entry& entry,
                              const std::vector<AppliedCommand>& commands,
                              const KvStateMachine& sm) {
  const AppliedRecord record{entry.term, EntryContentHash(entry), sm.DataHash(), sm.SessionsHash(),
                             node};
  const consensus::Index i = entry.index;
  if (i > applied_.size() + 1 || i == 0) {
    Fail("state-machine-safety",
         absl::StrFormat("node %d applies %d before anyone applied %d", node, i, applied_.size() + 1));
    return;
  }
  if (i == applied_.size() + 1) {
    applied_.push_back(record);
    std::vector<std::pair<uint64_t, uint64_t>>& writes = executed_by_entry_.emplace_back();
    for (const AppliedCommand& a : commands) {
      if (a.outcome == ApplyOutcome::kExecuted) writes.emplace_back(a.command.client, a.command.seq);
    }
  } else {
    const AppliedRecord& seen = applied_[i - 1];
    if (seen.term != record.term || seen.content_hash != record.content_hash) {
      Fail("state-machine-safety",
           absl::StrFormat("node %d applied entry %d of term %d; node %d applied term %d there",
                           node, i, record.term, seen.first_node, seen.term));
      return;
    }
    if (seen.data_hash != record.data_hash) {
      Fail("state-hash", absl::StrFormat("node %d and node %d differ after applying %d "
                                         "(state hash %016x vs %016x)",
                                         node, seen.first_node, i, record.data_hash,
                                         seen.data_hash));
      return;
    }
    if (seen.sessions_hash != record.sessions_hash) {
      Fail("session-table", absl::StrFormat("node %d and node %d hold different session tables "
                                            "after applying %d",
                                            node, seen.first_node, i));
      return;
    }
  }
  auto& executed = executed_[node];
  for (const AppliedCommand& a : commands) {
    if (a.outcome != ApplyOutcome::kExecuted) continue;
    auto [it, inserted] =
        executed.emplace(std::make_pair(a.command.client, a.command.seq), entry.index);
    if (!inserted) {
      Fail("exactly-once",
           absl::StrFormat("node %d applied write %s twice, at entries %d and %d", node,
                           DescribeCommand(a.command), it->second, entry.index));
      return;
    }
  }
}

void SafetyChecker::OnSnapshotInstalled(consensus::NodeId node,
                                        const consensus::SnapshotMeta& meta,
                                        const KvStateMachine& sm) {
  const consensus::Index i = meta.index;
  if (i == 0 || i > applied_.size()) {
    Fail("state-machine-safety",
         absl::StrFormat("node %d installs snapshot %d beyond every applied entry (%d)", node, i,
                         applied_.size()));
    return;
  }
  const AppliedRecord& seen = applied_[i - 1];
  if (seen.term != meta.term) {
    Fail("state-machine-safety",
         absl::StrFormat("node %d installs snapshot %d of term %d; node %d applied term %d there",
                         node, i, meta.term, seen.first_node, seen.term));
    return;
  }
  if (seen.data_hash != sm.DataHash() || seen.sessions_hash != sm.SessionsHash()) {
    Fail("state-hash", absl::StrFormat("node %d installs snapshot %d unlike node %d's state there",
                                       node, i, seen.first_node));
    return;
  }
  auto& executed = executed_[node];
  for (consensus::Index j = 1; j <= i; ++j) {
    for (const auto& write : executed_by_entry_[j - 1]) executed.emplace(write, j);
  }
}

void SafetyChecker::CheckLogMatching(
    const std::map<consensus::NodeId, const consensus::LogStorage*>& logs) {
  for (auto a = logs.begin(); a != logs.end(); ++a) {
    for (auto b = std::next(a); b != logs.end(); ++b) {
      // Where both logs hold entries: scanning down from the top, once two
      // entries agree on the term, everything below must be identical.
      const consensus::Index lo = std::max(a->second->FirstIndex(), b->second->FirstIndex());
      const consensus::Index hi = std::min(a->second->LastIndex(), b->second->LastIndex());
      if (lo > hi) continue;
      absl::StatusOr<std::vector<consensus::Entry>> x = a->second->Entries(lo, hi + 1, kAllBytes);
      absl::StatusOr<std::vector<consensus::Entry>> y = b->second->Entries(lo, hi + 1, kAllBytes);
      if (!x.ok() || !y.ok()) {
        Fail("log-matching", absl::StrFormat("nodes %d and %d: unreadable logs", a->first, b->first));
        return;
      }
      size_t common = x->size();
      while (common > 0 && (*x)[common - 1].term != (*y)[common - 1].term) --common;
      for (size_t j = 0; j < common; ++j) {
        if (!((*x)[j] == (*y)[j])) {
          Fail("log-matching",
               absl::StrFormat("nodes %d and %d share entry (%d, term %d) but differ at entry %d",
                               a->first, b->first, lo + common - 1, (*x)[common - 1].term, lo + j));
          return;
        }
      }
    }
  }
}

void SafetyChecker::CheckAcknowledged(const std::vector<std::pair<uint64_t, uint64_t>>& acked,
                                      const std::vector<consensus::NodeId>& nodes) {
  for (const auto& [client, seq] : acked) {
    for (consensus::NodeId node : nodes) {
      const auto& executed = executed_[node];
      if (!executed.contains(std::make_pair(client, seq))) {
        Fail("acknowledged-write-lost",
             absl::StrFormat("client %d's write #%d was acknowledged but node %d never applied it",
                             client, seq, node));
        return;
      }
    }
  }
}

}  // namespace blizzard::sim
