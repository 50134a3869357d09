// Helpers for the single-Raft unit tests (raft_test.cc and
// raft_extensions_test.cc): configs, logs, hand-made messages, and a Node
// that drives one Raft over a MemoryStorage per the Ready contract.
#ifndef BLIZZARD_CONSENSUS_RAFT_TEST_UTIL_H_
#define BLIZZARD_CONSENSUS_RAFT_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/raft.h"
#include "consensus/storage.h"
#include "gtest/gtest.h"

namespace blizzard::consensus {

inline Config TestConfig(NodeId id, std::vector<NodeId> voters) {
  Config c;
  c.id = id;
  c.voters = std::move(voters);
  c.election_timeout_ticks = 10;
  c.heartbeat_interval_ticks = 1;
  // The plain protocol unless a test asks for the extensions.
  c.pre_vote = false;
  c.check_quorum = false;
  return c;
}

inline std::vector<Entry> Log(const std::vector<Term>& terms) {
  std::vector<Entry> log;
  for (size_t i = 0; i < terms.size(); ++i) {
    log.push_back(Entry{terms[i], i + 1, EntryType::kNormal,
                        absl::StrCat("e", i + 1)});
  }
  return log;
}

// One Raft over a MemoryStorage, with a driver that follows the Ready
// contract: persist, collect messages, apply, Advance.
struct Node {
  explicit Node(const Config& config, const std::vector<Entry>& log = {},
                HardState hs = {}) {
    EXPECT_TRUE(storage.Append(log).ok());
    storage.SetHardState(hs);
    auto r = Raft::Create(config, &storage);
    EXPECT_TRUE(r.ok()) << r.status();
    raft = std::move(*r);
  }

  void Restart(const Config& config) {
    raft.reset();
    auto r = Raft::Create(config, &storage);
    ASSERT_TRUE(r.ok()) << r.status();
    raft = std::move(*r);
  }

  // In the order raft.h prescribes: stage chunks, install, then persist.
  void Persist(const Ready& rd) {
    for (const SnapshotChunk& c : rd.snapshot_chunks) {
      if (c.offset == 0) {
        staged.clear();
        staged_meta = c.meta;
      }
      ASSERT_EQ(staged.size(), c.offset) << "chunk does not follow";
      ASSERT_EQ(staged_meta, c.meta);
      staged += c.data;
    }
    if (rd.snapshot.has_value()) {
      ASSERT_EQ(staged_meta, *rd.snapshot);
      ASSERT_TRUE(storage.InstallSnapshot(*rd.snapshot, staged).ok());
      installed.push_back(*rd.snapshot);
    }
    ASSERT_TRUE(storage.Append(rd.entries).ok());
    if (rd.hard_state) storage.SetHardState(*rd.hard_state);
  }

  // Processes every Ready; returns the messages sent.
  std::vector<Message> Drain() {
    std::vector<Message> out;
    while (raft->HasReady()) {
      Ready rd = raft->GetReady();
      Persist(rd);
      out.insert(out.end(), rd.messages.begin(), rd.messages.end());
      if (rd.membership.has_value()) memberships.push_back(*rd.membership);
      applied.insert(applied.end(), rd.committed.begin(), rd.committed.end());
      reads.insert(reads.end(), rd.read_states.begin(), rd.read_states.end());
      raft->Advance(rd);
    }
    return out;
  }

  MemoryStorage storage;
  std::unique_ptr<Raft> raft;
  std::vector<Entry> applied;
  std::vector<ReadState> reads;
  std::vector<Membership> memberships;  // Ready.membership, in order.
  std::string staged;                   // Snapshot chunks received.
  SnapshotMeta staged_meta;
  std::vector<SnapshotMeta> installed;
};

inline Message Msg(MessageType type, NodeId from, NodeId to, Term term) {
  Message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = term;
  return m;
}

inline Message VoteRequest(NodeId from, NodeId to, Term term, Index index,
                    Term log_term) {
  Message m = Msg(MessageType::kVote, from, to, term);
  m.index = index;
  m.log_term = log_term;
  return m;
}

inline Message Append(NodeId from, NodeId to, Term term, Index index, Term log_term,
               Index commit, std::vector<Entry> entries = {}) {
  Message m = Msg(MessageType::kAppend, from, to, term);
  m.index = index;
  m.log_term = log_term;
  m.commit = commit;
  m.entries = std::move(entries);
  return m;
}

inline Message HeartbeatAck(NodeId from, NodeId to, Term term, uint64_t context) {
  Message m = Msg(MessageType::kHeartbeatResponse, from, to, term);
  m.context = context;
  return m;
}

inline Message AppendOk(NodeId from, NodeId to, Term term, Index index) {
  Message m = Msg(MessageType::kAppendResponse, from, to, term);
  m.index = index;
  return m;
}

inline std::vector<Message> OfType(const std::vector<Message>& msgs, MessageType t,
                            NodeId to = kNoNode) {
  std::vector<Message> out;
  for (const Message& m : msgs) {
    if (m.type == t && (to == kNoNode || m.to == to)) out.push_back(m);
  }
  return out;
}

// Elects node.raft (plain votes) with grants from every other voter.
inline std::vector<Message> ElectLeader(Node& node, const std::vector<NodeId>& voters) {
  node.raft->Campaign();
  node.Drain();
  for (NodeId v : voters) {
    if (v == node.raft->id()) continue;
    Message grant = Msg(MessageType::kVoteResponse, v, node.raft->id(),
                        node.raft->term());
    EXPECT_TRUE(node.raft->Step(grant).ok());
  }
  EXPECT_EQ(node.raft->role(), Role::kLeader);
  return node.Drain();
}

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_RAFT_TEST_UTIL_H_
