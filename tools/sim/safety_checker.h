// Raft and state machine safety over a whole simulated cluster, fed by the
// nodes' drivers as things happen (so every step is checked) and queried at
// the end. The first violation is kept; the simulator stops there.
//
// Checks:
//   election safety      at most one leader per term.
//   leader completeness  an entry committed in term T is in the log of every
//                        leader of a term > T (checked when a node is first
//                        seen leading a term; commits are attributed to the
//                        term of the leader seen advancing its commit).
//   log matching         on persisted logs: two logs holding an entry with
//                        the same (index, term) hold the same entry and the
//                        same term before it (by induction: the same prefix).
//                        Incremental at every persist, and in full on demand.
//   recovery integrity   every entry of a log recovered after a crash is one
//                        that was persisted with that (index, term), and the
//                        recovered hard state keeps every vote the node gave.
//   persist-before-send  a node's message never claims more than its durable
//                        state holds: its term, a granted vote, an accepted
//                        append (optional, on by default).
//   state machine safety nodes that applied index i applied the same entry,
//                        and hold identical data (state hash) and session
//                        tables afterwards.
//   exactly once         no (client, seq) write is executed twice on a node;
//                        every acknowledged write was executed on every node
//                        (CheckAcknowledged, at the end).
#ifndef BLIZZARD_TOOLS_SIM_SAFETY_CHECKER_H_
#define BLIZZARD_TOOLS_SIM_SAFETY_CHECKER_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "consensus/raft.h"
#include "consensus/storage.h"
#include "consensus/types.h"
#include "tools/sim/kv_state_machine.h"

namespace blizzard::sim {

struct Violation {
  std::string check;   // Short name, e.g. "election-safety".
  std::string detail;  // What, where, when.
};

class SafetyChecker {
 public:
  explicit SafetyChecker(bool check_persist_before_send = true)
      : check_persist_before_send_(check_persist_before_send) {}

  // After a node ran: its role, term, log and commit index.
  void OnNodeState(consensus::NodeId node, const consensus::Raft& raft);
  // A Ready's entries, before they are persisted on `log`.
  void OnPersist(consensus::NodeId node, const std::vector<consensus::Entry>& entries,
                 const consensus::LogStorage& log);
  // A node restarted on `log` (pmemlog's recovery just ran).
  void OnRecovered(consensus::NodeId node, const consensus::LogStorage& log);
  // A message about to be sent; `durable` is the sender's persisted log.
  void OnSend(consensus::NodeId node, const consensus::Message& m,
              const consensus::LogStorage& durable);
  void OnApplied(consensus::NodeId node, const consensus::Entry& entry,
                 const std::vector<AppliedCommand>& commands, const KvStateMachine& sm);
  // A node's state machine became a snapshot from the leader: it must equal
  // what nodes that applied up to meta.index hold, and counts as having
  // executed every write up to there.
  void OnSnapshotInstalled(consensus::NodeId node, const consensus::SnapshotMeta& meta,
                           const KvStateMachine& sm);

  // Full pairwise log matching over persisted logs (their overlap, when
  // compacted).
  void CheckLogMatching(const std::map<consensus::NodeId, const consensus::LogStorage*>& logs);
  // Every acknowledged write (client, seq) was executed exactly once on
  // every one of `nodes`.
  void CheckAcknowledged(const std::vector<std::pair<uint64_t, uint64_t>>& acked,
                         const std::vector<consensus::NodeId>& nodes);

  void Fail(std::string check, std::string detail);
  bool failed() const { return !violations_.empty(); }
  const Violation& first() const { return violations_.front(); }
  const std::vector<Violation>& violations() const { return violations_; }

  size_t leaders_seen() const { return leaders_.size(); }
  consensus::Index commit_known() const { return committed_.size(); }

 private:
  struct LogRecord {
    uint64_t content_hash = 0;
    consensus::Term prev_term = 0;
  };
  struct AppliedRecord {  // After applying entry i anywhere.
    consensus::Term term = 0;
    uint64_t content_hash = 0;
    uint64_t data_hash = 0;
    uint64_t sessions_hash = 0;
    consensus::NodeId first_node = 0;
  };
  struct Committed {
    consensus::Term entry_term = 0;
    consensus::Term commit_term = 0;  // Term of the leader seen committing it.
  };
  struct Promise {
    consensus::Term term = 0;
    consensus::NodeId vote = consensus::kNoNode;
  };

  // Records or compares the persisted entry (index, term); false on a
  // violation.
  // Election safety: `node` leads `term`; false on a violation.
  bool CheckLeader(consensus::NodeId node, consensus::Term term);
  bool CheckLogEntry(consensus::NodeId node, const consensus::Entry& e, consensus::Term prev_term,
                     const char* context);

  const bool check_persist_before_send_;
  std::vector<Violation> violations_;
  std::map<consensus::Term, consensus::NodeId> leaders_;
  std::set<consensus::Term> completeness_checked_;
  std::vector<Committed> committed_;  // Index i at [i - 1].
  absl::flat_hash_map<std::pair<consensus::Index, consensus::Term>, LogRecord> log_records_;
  std::vector<AppliedRecord> applied_;  // Index i at [i - 1].
  std::map<consensus::NodeId, Promise> promises_;
  // Per node: (client, seq) -> index of the entry that executed it.
  std::map<consensus::NodeId, absl::flat_hash_map<std::pair<uint64_t, uint64_t>, consensus::Index>>
      executed_;
  // Writes executed by entry i (as its first applier saw), at [i - 1].
  std::vector<std::vector<std::pair<uint64_t, uint64_t>>> executed_by_entry_;
};

uint64_t EntryContentHash(const consensus::Entry& e);

}  // namespace blizzard::sim

#endif  // BLIZZARD_TOOLS_SIM_SAFETY_CHECKER_H_
