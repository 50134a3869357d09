// Unit tests of single Raft behaviours (in the style of etcd's raft_test.go):
// one Raft is driven by hand-made messages and its Ready output inspected.
#include "consensus/raft.h"

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/raft_test_util.h"
#include "gtest/gtest.h"

namespace blizzard::consensus {
namespace {

// ---- Elections ----

TEST(RaftElectionTest, FollowerCampaignsAfterRandomizedTimeout) {
  std::set<int> timeouts;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    Config c = TestConfig(1, {1, 2, 3});
    c.random_seed = seed;
    Node n(c);
    int ticks = 0;
    while (n.raft->role() == Role::kFollower && ticks < 100) {
      n.raft->Tick();
      ++ticks;
    }
    ASSERT_GE(ticks, c.election_timeout_ticks);
    ASSERT_LT(ticks, 2 * c.election_timeout_ticks);
    timeouts.insert(ticks);
    EXPECT_EQ(n.raft->role(), Role::kCandidate);
    EXPECT_EQ(n.raft->term(), 1u);
    std::vector<Message> msgs = n.Drain();
    ASSERT_EQ(OfType(msgs, MessageType::kVote).size(), 2u);
    for (const Message& m : msgs) {
      EXPECT_EQ(m.term, 1u);
      EXPECT_EQ(m.index, 0u);
      EXPECT_EQ(m.log_term, 0u);
    }
    // The vote for itself is durable before the requests leave.
    EXPECT_EQ(n.storage.InitialHardState().vote, 1u);
  }
  EXPECT_GT(timeouts.size(), 5u) << "timeouts are not randomized";
}

TEST(RaftElectionTest, TimeoutsAreDeterministicPerSeedAndDifferPerNode) {
  auto ticks_to_campaign = [](NodeId id, uint64_t seed) {
    Config c = TestConfig(id, {1, 2, 3, 4, 5});
    c.random_seed = seed;
    Node n(c);
    int ticks = 0;
    while (n.raft->role() == Role::kFollower) {
      n.raft->Tick();
      ++ticks;
    }
    return ticks;
  };
  int differing = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    EXPECT_EQ(ticks_to_campaign(1, seed), ticks_to_campaign(1, seed));
    std::set<int> per_node;
    for (NodeId id = 1; id <= 5; ++id) per_node.insert(ticks_to_campaign(id, seed));
    if (per_node.size() > 1) ++differing;
  }
  EXPECT_GT(differing, 15);
}

TEST(RaftElectionTest, CandidateWinsWithMajorityAndLosesOnMajorityRejection) {
  const std::vector<NodeId> voters = {1, 2, 3, 4, 5};
  {
    Node n(TestConfig(1, voters));
    n.raft->Campaign();
    n.Drain();
    ASSERT_TRUE(n.raft->Step(Msg(MessageType::kVoteResponse, 2, 1, 1)).ok());
    EXPECT_EQ(n.raft->role(), Role::kCandidate);
    // The same voter twice counts once.
    ASSERT_TRUE(n.raft->Step(Msg(MessageType::kVoteResponse, 2, 1, 1)).ok());
    EXPECT_EQ(n.raft->role(), Role::kCandidate);
    ASSERT_TRUE(n.raft->Step(Msg(MessageType::kVoteResponse, 3, 1, 1)).ok());
    EXPECT_EQ(n.raft->role(), Role::kLeader);
    EXPECT_EQ(n.raft->leader(), 1u);
    // The new leader appends a no-op of its term and replicates it.
    std::vector<Message> msgs = n.Drain();
    EXPECT_EQ(n.raft->last_index(), 1u);
    EXPECT_EQ(OfType(msgs, MessageType::kAppend).size(), 4u);
    EXPECT_EQ(n.storage.Entries(1, 2, 1000)->front().type, EntryType::kNoop);
  }
  {
    Node n(TestConfig(1, voters));
    n.raft->Campaign();
    n.Drain();
    for (NodeId v : {2, 3, 4}) {
      Message reject = Msg(MessageType::kVoteResponse, v, 1, 1);
      reject.reject = true;
      ASSERT_TRUE(n.raft->Step(reject).ok());
    }
    EXPECT_EQ(n.raft->role(), Role::kFollower);
    EXPECT_EQ(n.raft->term(), 1u);
  }
}

TEST(RaftElectionTest, VoteRequiresUpToDateLog) {
  // The voter's log: index 2, last term 2.
  struct Case {
    Index index;
    Term log_term;
    bool granted;
  } cases[] = {
      {2, 2, true},   // Same last entry.
      {3, 2, true},   // Longer, same term.
      {1, 2, false},  // Shorter, same term.
      {5, 1, false},  // Longer but an older last term.
      {1, 3, true},   // Shorter but a newer last term.
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(absl::StrCat("index=", tc.index, " log_term=", tc.log_term));
    Node n(TestConfig(1, {1, 2, 3}), Log({1, 2}), HardState{2, 0, 0});
    ASSERT_TRUE(n.raft->Step(VoteRequest(2, 1, 4, tc.index, tc.log_term)).ok());
    std::vector<Message> out = OfType(n.Drain(), MessageType::kVoteResponse);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].reject, !tc.granted);
    EXPECT_EQ(out[0].term, 4u);
    EXPECT_EQ(n.raft->term(), 4u);
    EXPECT_EQ(n.storage.InitialHardState().vote, tc.granted ? 2u : kNoNode);
  }
}

TEST(RaftElectionTest, OneVotePerTermEvenAcrossRestart) {
  Config c = TestConfig(1, {1, 2, 3});
  Node n(c);
  ASSERT_TRUE(n.raft->Step(VoteRequest(2, 1, 5, 0, 0)).ok());
  // The vote is in the hard state of the Ready that carries the grant.
  ASSERT_TRUE(n.raft->HasReady());
  Ready rd = n.raft->GetReady();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->vote, 2u);
  EXPECT_EQ(rd.hard_state->term, 5u);
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_FALSE(rd.messages[0].reject);
  n.Persist(rd);
  n.raft->Advance(rd);

  ASSERT_TRUE(n.raft->Step(VoteRequest(3, 1, 5, 0, 0)).ok());
  std::vector<Message> out = n.Drain();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].reject) << "second vote in term 5";
  // A retransmitted request from the same candidate is granted again.
  ASSERT_TRUE(n.raft->Step(VoteRequest(2, 1, 5, 0, 0)).ok());
  out = n.Drain();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].reject);

  n.Restart(c);
  EXPECT_EQ(n.raft->term(), 5u);
  ASSERT_TRUE(n.raft->Step(VoteRequest(3, 1, 5, 0, 0)).ok());
  out = n.Drain();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].reject) << "restart forgot the vote";
}

TEST(RaftElectionTest, HigherTermMakesAnyRoleStepDown) {
  const std::vector<NodeId> voters = {1, 2, 3};
  for (MessageType type : {MessageType::kAppend, MessageType::kHeartbeat,
                           MessageType::kVote, MessageType::kAppendResponse,
                           MessageType::kHeartbeatResponse}) {
    SCOPED_TRACE(MessageTypeName(type));
    Node n(TestConfig(1, voters));
    ElectLeader(n, voters);
    ASSERT_EQ(n.raft->term(), 1u);
    Message m = Msg(type, 2, 1, 7);
    if (type == MessageType::kVote) {
      m.index = 1;  // As up to date as the leader's no-op: granted.
      m.log_term = 1;
    }
    ASSERT_TRUE(n.raft->Step(m).ok());
    EXPECT_EQ(n.raft->role(), Role::kFollower);
    EXPECT_EQ(n.raft->term(), 7u);
    const bool from_leader =
        type == MessageType::kAppend || type == MessageType::kHeartbeat;
    EXPECT_EQ(n.raft->leader(), from_leader ? 2u : kNoNode);
    n.Drain();
    // The vote of term 1 does not carry over to term 7.
    const NodeId vote = n.storage.InitialHardState().vote;
    EXPECT_EQ(vote, type == MessageType::kVote ? 2u : kNoNode);
  }
}

TEST(RaftElectionTest, StaleTermMessagesAreIgnored) {
  for (bool check_quorum : {false, true}) {
    Config c = TestConfig(1, {1, 2, 3});
    c.check_quorum = check_quorum;
    Node n(c, Log({1, 1}), HardState{5, 0, 0});
    ASSERT_TRUE(n.raft->Step(Append(2, 1, 3, 2, 1, 2)).ok());
    EXPECT_EQ(n.raft->term(), 5u);
    EXPECT_EQ(n.raft->commit_index(), 0u);
    EXPECT_EQ(n.raft->leader(), kNoNode);
    // The stale leader is told the current term so it steps down.
    std::vector<Message> out = n.Drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].type, MessageType::kAppendResponse);
    EXPECT_EQ(out[0].term, 5u);
    // A stale candidate is refused and told the term (Raft paper), so that
    // it catches up even if we never ask it for anything.
    ASSERT_TRUE(n.raft->Step(VoteRequest(3, 1, 4, 9, 3)).ok());
    out = n.Drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].type, MessageType::kVoteResponse);
    EXPECT_TRUE(out[0].reject);
    EXPECT_EQ(out[0].term, 5u);
    EXPECT_EQ(n.storage.InitialHardState().vote, kNoNode);
  }
}

TEST(RaftElectionTest, PreVoteKeepsTermUntilAQuorumWouldVote) {
  Config c = TestConfig(1, {1, 2, 3});
  c.pre_vote = true;
  Node n(c, Log({1}), HardState{1, 0, 1});
  n.raft->Campaign();
  EXPECT_EQ(n.raft->role(), Role::kPreCandidate);
  EXPECT_EQ(n.raft->term(), 1u);
  std::vector<Message> out = n.Drain();
  ASSERT_EQ(OfType(out, MessageType::kPreVote).size(), 2u);
  EXPECT_EQ(out[0].term, 2u);  // The term it would campaign for.
  EXPECT_EQ(n.storage.InitialHardState().term, 1u);
  EXPECT_EQ(n.storage.InitialHardState().vote, kNoNode);

  Message grant = Msg(MessageType::kPreVoteResponse, 2, 1, 2);
  ASSERT_TRUE(n.raft->Step(grant).ok());
  EXPECT_EQ(n.raft->role(), Role::kCandidate);
  EXPECT_EQ(n.raft->term(), 2u);
  out = n.Drain();
  ASSERT_EQ(OfType(out, MessageType::kVote).size(), 2u);
  ASSERT_TRUE(n.raft->Step(Msg(MessageType::kVoteResponse, 3, 1, 2)).ok());
  EXPECT_EQ(n.raft->role(), Role::kLeader);
}

TEST(RaftElectionTest, PreVoteIsGrantedWithoutChangingTheVoter) {
  Config c = TestConfig(1, {1, 2, 3});
  c.pre_vote = true;
  Node n(c, Log({1, 1}), HardState{1, 3, 0});
  Message pre = VoteRequest(2, 1, 2, 2, 1);
  pre.type = MessageType::kPreVote;
  ASSERT_TRUE(n.raft->Step(pre).ok());
  std::vector<Message> out = n.Drain();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, MessageType::kPreVoteResponse);
  EXPECT_FALSE(out[0].reject);
  EXPECT_EQ(out[0].term, 2u);
  EXPECT_EQ(n.raft->term(), 1u);
  EXPECT_EQ(n.storage.InitialHardState(), (HardState{1, 3, 0}));
  // A pre-vote with a stale log is refused with our term.
  pre.index = 1;
  ASSERT_TRUE(n.raft->Step(pre).ok());
  out = n.Drain();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].reject);
  EXPECT_EQ(out[0].term, 1u);
}

TEST(RaftElectionTest, CheckQuorumFollowerIgnoresVotesWhileLeaderIsAlive) {
  Config c = TestConfig(1, {1, 2, 3});
  c.check_quorum = true;
  Node n(c);
  ASSERT_TRUE(n.raft->Step(Msg(MessageType::kHeartbeat, 2, 1, 1)).ok());
  n.Drain();
  ASSERT_TRUE(n.raft->Step(VoteRequest(3, 1, 2, 0, 0)).ok());
  EXPECT_EQ(n.raft->term(), 1u) << "disrupted by a candidate";
  EXPECT_TRUE(n.Drain().empty());
  // Once the leader has been silent for an election timeout, it may vote.
  for (int i = 0; i < c.election_timeout_ticks; ++i) n.raft->Tick();
  n.Drain();
  ASSERT_TRUE(n.raft->Step(VoteRequest(3, 1, 5, 0, 0)).ok());
  EXPECT_EQ(n.raft->term(), 5u);
}

TEST(RaftElectionTest, CheckQuorumLeaderStepsDownWithoutQuorum) {
  Config c = TestConfig(1, {1, 2, 3});
  c.check_quorum = true;
  Node n(c);
  ElectLeader(n, {1, 2, 3});
  // Node 2 answers, node 3 is silent: still a quorum.
  for (int i = 0; i < 2 * c.election_timeout_ticks; ++i) {
    n.raft->Tick();
    n.Drain();
    ASSERT_TRUE(n.raft->Step(Msg(MessageType::kHeartbeatResponse, 2, 1, 1)).ok());
  }
  EXPECT_EQ(n.raft->role(), Role::kLeader);
  for (int i = 0; i < 2 * c.election_timeout_ticks; ++i) n.raft->Tick();
  EXPECT_EQ(n.raft->role(), Role::kFollower);
  EXPECT_EQ(n.raft->term(), 1u);
}

// ---- Replication ----

TEST(RaftReplicationTest, FollowerAppendsAndCommitsUpToLastNewEntry) {
  Node n(TestConfig(2, {1, 2, 3}));
  std::vector<Entry> entries = {Entry{1, 1, EntryType::kNoop, ""},
                                Entry{1, 2, EntryType::kNormal, "a"}};
  // Leader commit 5 is beyond what this append proves we hold: commit 2.
  ASSERT_TRUE(n.raft->Step(Append(1, 2, 1, 0, 0, 5, entries)).ok());
  EXPECT_EQ(n.raft->leader(), 1u);
  EXPECT_EQ(n.raft->commit_index(), 2u);
  std::vector<Message> out = n.Drain();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, MessageType::kAppendResponse);
  EXPECT_FALSE(out[0].reject);
  EXPECT_EQ(out[0].index, 2u);
  EXPECT_EQ(n.storage.LastIndex(), 2u);
  EXPECT_EQ(n.storage.InitialHardState().commit, 2u);
  EXPECT_EQ(n.applied.size(), 2u);
}

TEST(RaftReplicationTest, FollowerRejectsMismatchWithHint) {
  struct Case {
    Index index;
    Term log_term;
    Index hint;
    Term hint_term;
  } cases[] = {
      // Our log: terms [1, 1, 2, 2].
      {4, 3, 4, 2},  // Term mismatch at our last entry.
      {6, 3, 4, 2},  // Beyond our log: hint at our last entry.
      {4, 1, 2, 1},  // Skip our whole term 2.
      {3, 1, 2, 1},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(absl::StrCat("index=", tc.index, " log_term=", tc.log_term));
    Node n(TestConfig(2, {1, 2, 3}), Log({1, 1, 2, 2}), HardState{3, 0, 0});
    ASSERT_TRUE(n.raft->Step(Append(1, 2, 3, tc.index, tc.log_term, 0)).ok());
    std::vector<Message> out = n.Drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(out[0].reject);
    EXPECT_EQ(out[0].index, tc.index);
    EXPECT_EQ(out[0].reject_hint, tc.hint);
    EXPECT_EQ(out[0].log_term, tc.hint_term);
    EXPECT_EQ(n.storage.LastIndex(), 4u);
  }
}

TEST(RaftReplicationTest, FollowerTruncatesConflictingSuffixOnly) {
  Node n(TestConfig(2, {1, 2, 3}), Log({1, 1, 2, 2, 2}), HardState{3, 0, 1});
  // A stale duplicate that matches our log changes nothing.
  ASSERT_TRUE(n.raft->Step(Append(1, 2, 3, 1, 1, 1, {Log({1, 1})[1]})).ok());
  n.Drain();
  EXPECT_EQ(n.storage.LastIndex(), 5u);
  // A conflict at index 3 replaces everything from there.
  std::vector<Entry> fresh = {Entry{3, 3, EntryType::kNormal, "new"}};
  ASSERT_TRUE(n.raft->Step(Append(1, 2, 3, 2, 1, 1, fresh)).ok());
  ASSERT_TRUE(n.raft->HasReady());
  Ready rd = n.raft->GetReady();
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(rd.entries[0], fresh[0]);
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].index, 3u);
  n.Persist(rd);
  n.raft->Advance(rd);
  EXPECT_EQ(n.storage.LastIndex(), 3u);
  EXPECT_EQ(*n.storage.TermAt(3), 3u);
  EXPECT_EQ(n.raft->last_index(), 3u);
}

// Found by the tools/sim soak (seed 208319): a follower that appends a
// term-2 leader's entries and, before its next Ready, truncates them for a
// term-3 leader's conflicting entry must not send the term-2 leader an ack
// of entries it never made durable (that leader may still count it).
TEST(RaftReplicationTest, TruncationInTheSameReadyDropsAcksOfTheReplacedEntries) {
  Node n(TestConfig(2, {1, 2, 3, 4, 5}), Log({1, 1}), HardState{2, 0, 1});
  const std::vector<Entry> old_entries = {Entry{2, 3, EntryType::kNormal, "a"},  // {term, index}
                                          Entry{2, 4, EntryType::kNormal, "b"}};
  absl::Status st = n.raft->Step(Append(1, 2, 2, 2, 1, 1, old_entries));
  ASSERT_TRUE(st.ok()) << st;
  // Not drained: the ack of index 4 waits for the Ready that persists 3..4.
  const std::vector<Entry> fresh = {Entry{3, 3, EntryType::kNormal, "new"}};
  ASSERT_TRUE(n.raft->Step(Append(3, 2, 3, 2, 1, 1, fresh)).ok());
  ASSERT_TRUE(n.raft->HasReady());
  Ready rd = n.raft->GetReady();
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(rd.entries[0], fresh[0]);
  for (const Message& m : rd.messages) {
    if (m.type == MessageType::kAppendResponse && !m.reject) {
      EXPECT_EQ(m.to, 3u) << "an ack of replaced entries leaves for node " << m.to;
      EXPECT_LE(m.index, 3u);
    }
  }
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].to, 3u);
  EXPECT_EQ(rd.messages[0].index, 3u);
  n.Persist(rd);
  n.raft->Advance(rd);
  EXPECT_EQ(n.storage.LastIndex(), 3u);
}

TEST(RaftReplicationTest, AppendBelowCommitIsAnsweredWithCommit) {
  Node n(TestConfig(2, {1, 2, 3}), Log({1, 1, 1}), HardState{1, 0, 3});
  ASSERT_TRUE(n.raft->Step(Append(1, 2, 1, 1, 1, 1, {Log({1, 1})[1]})).ok());
  std::vector<Message> out = n.Drain();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].reject);
  EXPECT_EQ(out[0].index, 3u);
}

TEST(RaftReplicationTest, InputsBetweenGetReadyAndAdvanceAreKept) {
  Node n(TestConfig(2, {1, 2, 3}));
  ASSERT_TRUE(n.raft->Step(Append(1, 2, 1, 0, 0, 0, Log({1, 1, 1}))).ok());
  Ready first = n.raft->GetReady();
  ASSERT_EQ(first.entries.size(), 3u);
  // Before the driver is done, a new leader replaces entries 2 and 3.
  std::vector<Entry> fresh = {Entry{2, 2, EntryType::kNoop, ""}};
  ASSERT_TRUE(n.raft->Step(Append(3, 2, 2, 1, 1, 0, fresh)).ok());
  n.Persist(first);
  n.raft->Advance(first);
  ASSERT_TRUE(n.raft->HasReady());
  Ready second = n.raft->GetReady();
  ASSERT_EQ(second.entries.size(), 1u);
  EXPECT_EQ(second.entries[0], fresh[0]);
  n.Persist(second);
  n.raft->Advance(second);
  EXPECT_EQ(n.storage.LastIndex(), 2u);
  EXPECT_EQ(*n.storage.TermAt(2), 2u);
  EXPECT_FALSE(n.raft->HasReady());
}

TEST(RaftReplicationTest, LeaderNeverCommitsAPreviousTermEntryByCounting) {
  // Raft figure 8: node 1 holds an entry of term 2 that a majority has; as
  // leader of term 3 it must not commit it until an entry of term 3 is
  // replicated on a majority.
  const std::vector<NodeId> voters = {1, 2, 3};
  Node n(TestConfig(1, voters), Log({1, 2}), HardState{2, 0, 1});
  ElectLeader(n, voters);
  ASSERT_EQ(n.raft->term(), 3u);
  ASSERT_EQ(n.raft->last_index(), 3u);  // The no-op of term 3.
  ASSERT_TRUE(n.raft->Step(AppendOk(2, 1, 3, 2)).ok());
  EXPECT_EQ(n.raft->commit_index(), 1u) << "committed a term-2 entry by count";
  ASSERT_TRUE(n.raft->Step(AppendOk(2, 1, 3, 3)).ok());
  EXPECT_EQ(n.raft->commit_index(), 3u);
}

TEST(RaftReplicationTest, LeaderCommitsByMajorityCountingItself) {
  const std::vector<NodeId> voters = {1, 2, 3, 4, 5};
  for (bool broadcast_commit : {false, true}) {
    SCOPED_TRACE(absl::StrCat("broadcast_commit=", broadcast_commit));
    Config c = TestConfig(1, voters);
    c.broadcast_commit = broadcast_commit;
    Node n(c);
    ElectLeader(n, voters);
    ASSERT_TRUE(n.raft->Propose("x").ok());
    n.Drain();
    ASSERT_TRUE(n.raft->Step(AppendOk(2, 1, 1, 2)).ok());
    EXPECT_EQ(n.raft->commit_index(), 0u);
    n.Drain();
    ASSERT_TRUE(n.raft->Step(AppendOk(3, 1, 1, 2)).ok());
    EXPECT_EQ(n.raft->commit_index(), 2u);
    std::set<NodeId> told;
    for (const Message& m : OfType(n.Drain(), MessageType::kAppend)) {
      if (m.commit == 2) told.insert(m.to);
    }
    if (broadcast_commit) {
      // At once, to every follower not waiting for a probe answer (4 and 5
      // still are).
      EXPECT_EQ(told, (std::set<NodeId>{2, 3}));
    } else {
      // With the next heartbeat, bounded by what each follower holds.
      EXPECT_TRUE(told.empty() || told == std::set<NodeId>{3});
      n.raft->Tick();
      for (const Message& m : OfType(n.Drain(), MessageType::kHeartbeat)) {
        EXPECT_EQ(m.commit, m.to <= 3 ? 2u : 0u);
      }
    }
  }
}

TEST(RaftReplicationTest, HeartbeatNeverCommitsBeyondFollowerMatch) {
  const std::vector<NodeId> voters = {1, 2, 3};
  Node n(TestConfig(1, voters));
  ElectLeader(n, voters);
  ASSERT_TRUE(n.raft->Step(AppendOk(2, 1, 1, 1)).ok());
  ASSERT_EQ(n.raft->commit_index(), 1u);
  n.Drain();
  n.raft->Tick();
  std::vector<Message> hb = OfType(n.Drain(), MessageType::kHeartbeat);
  ASSERT_EQ(hb.size(), 2u);
  for (const Message& m : hb) EXPECT_EQ(m.commit, m.to == 2 ? 1u : 0u);
}

TEST(RaftReplicationTest, ProbeSendsOneAppendUntilAnswered) {
  const std::vector<NodeId> voters = {1, 2};
  Node n(TestConfig(1, voters));
  std::vector<Message> out = ElectLeader(n, voters);
  ASSERT_EQ(OfType(out, MessageType::kAppend, 2).size(), 1u);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(n.raft->Propose("p").ok());
  EXPECT_TRUE(OfType(n.Drain(), MessageType::kAppend, 2).empty())
      << "probe state sent a second append before an answer";
  // A heartbeat response proves liveness: one more probe.
  ASSERT_TRUE(n.raft->Step(Msg(MessageType::kHeartbeatResponse, 2, 1, 1)).ok());
  EXPECT_EQ(OfType(n.Drain(), MessageType::kAppend, 2).size(), 1u);
}

TEST(RaftReplicationTest, ReplicateStatePipelinesUpToInflightMax) {
  const std::vector<NodeId> voters = {1, 2};
  Config c = TestConfig(1, voters);
  c.inflight_appends_max = 3;
  Node n(c);
  ElectLeader(n, voters);
  ASSERT_TRUE(n.raft->Step(AppendOk(2, 1, 1, 1)).ok());  // -> replicate
  n.Drain();
  std::vector<Message> sent;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(n.raft->Propose(absl::StrCat("p", i)).ok());
    for (const Message& m : OfType(n.Drain(), MessageType::kAppend, 2)) {
      sent.push_back(m);
    }
  }
  // Three appends in flight, pipelined without waiting for answers.
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0].index, 1u);
  EXPECT_EQ(sent[1].index, 2u);
  EXPECT_EQ(sent[2].index, 3u);
  // Acking the first frees one slot; the rest go as one append.
  ASSERT_TRUE(n.raft->Step(AppendOk(2, 1, 1, 2)).ok());
  std::vector<Message> more = OfType(n.Drain(), MessageType::kAppend, 2);
  ASSERT_GE(more.size(), 1u);
  EXPECT_EQ(more.back().entries.back().index, 11u);
}

TEST(RaftReplicationTest, AppendBytesMaxBoundsEachMessage) {
  const std::vector<NodeId> voters = {1, 2};
  Config c = TestConfig(1, voters);
  c.append_bytes_max = 2 * (100 + kEntryOverheadBytes);
  Node n(c);
  ElectLeader(n, voters);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(n.raft->Propose(std::string(100, 'x')).ok());
  n.Drain();
  ASSERT_TRUE(n.raft->Step(AppendOk(2, 1, 1, 1)).ok());
  std::vector<Message> out = OfType(n.Drain(), MessageType::kAppend, 2);
  ASSERT_EQ(out.size(), 4u);  // Entries 2..8 in messages of at most two.
  for (const Message& m : out) {
    uint64_t bytes = 0;
    for (const Entry& e : m.entries) bytes += EntrySizeBytes(e);
    EXPECT_LE(bytes, c.append_bytes_max);
  }
}

TEST(RaftReplicationTest, LeaderBacksOffToTheFollowersHint) {
  // Leader log terms [1, 1, 1, 4, 4, 5, 5, 6, 6, 6] (figure 7), term 8.
  const std::vector<NodeId> voters = {1, 2, 3};
  Node n(TestConfig(1, voters), Log({1, 1, 1, 4, 4, 5, 5, 6, 6, 6}),
         HardState{8, 0, 0});
  ElectLeader(n, voters);
  // Follower (f) of figure 7 holds terms [1,1,1,2,2,2,3,3,3,3,3].
  Message reject = Msg(MessageType::kAppendResponse, 2, 1, 9);
  reject.reject = true;
  reject.index = 10;
  reject.reject_hint = 10;
  reject.log_term = 3;
  ASSERT_TRUE(n.raft->Step(reject).ok());
  std::vector<Message> out = OfType(n.Drain(), MessageType::kAppend, 2);
  ASSERT_EQ(out.size(), 1u);
  // Our entries of terms 4..6 cannot match a log of term <= 3 there.
  EXPECT_EQ(out[0].index, 3u);
  EXPECT_EQ(out[0].log_term, 1u);
}

TEST(RaftReplicationTest, StaleRejectionIsIgnored) {
  const std::vector<NodeId> voters = {1, 2};
  Node n(TestConfig(1, voters));
  ElectLeader(n, voters);
  ASSERT_TRUE(n.raft->Step(AppendOk(2, 1, 1, 1)).ok());
  n.Drain();
  Message reject = Msg(MessageType::kAppendResponse, 2, 1, 1);
  reject.reject = true;
  reject.index = 0;
  ASSERT_TRUE(n.raft->Step(reject).ok());
  EXPECT_TRUE(OfType(n.Drain(), MessageType::kAppend, 2).empty());
}

// ---- Ready / Advance ----

TEST(RaftReadyTest, SingleNodeReadyCarriesEverythingOnce) {
  Node n(TestConfig(1, {1}));
  n.raft->Campaign();
  ASSERT_EQ(n.raft->role(), Role::kLeader);
  ASSERT_TRUE(n.raft->HasReady());
  Ready rd = n.raft->GetReady();
  ASSERT_TRUE(rd.soft_state.has_value());
  EXPECT_EQ(*rd.soft_state, (SoftState{1, Role::kLeader}));
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(*rd.hard_state, (HardState{1, 1, 1}));
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(rd.entries[0].type, EntryType::kNoop);
  EXPECT_EQ(rd.committed, rd.entries);
  EXPECT_TRUE(rd.messages.empty());
  EXPECT_EQ(n.raft->applied_index(), 0u);
  n.Persist(rd);
  n.raft->Advance(rd);
  EXPECT_EQ(n.raft->applied_index(), 1u);
  EXPECT_FALSE(n.raft->HasReady());

  absl::StatusOr<Index> index = n.raft->Propose("hello");
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(*index, 2u);
  rd = n.raft->GetReady();
  EXPECT_FALSE(rd.soft_state.has_value());
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(rd.entries[0].data, "hello");
  EXPECT_EQ(rd.committed, rd.entries);
  n.Persist(rd);
  n.raft->Advance(rd);
  EXPECT_FALSE(n.raft->HasReady());
}

TEST(RaftReadyTest, CommittedBytesMaxSplitsApplying) {
  Config c = TestConfig(1, {1});
  c.committed_bytes_max = 2 * (100 + kEntryOverheadBytes);
  Node n(c);
  n.raft->Campaign();
  n.Drain();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(n.raft->Propose(std::string(100, 'a')).ok());
  int readies = 0;
  while (n.raft->HasReady()) {
    Ready rd = n.raft->GetReady();
    EXPECT_LE(rd.committed.size(), 2u);
    n.Persist(rd);
    n.applied.insert(n.applied.end(), rd.committed.begin(), rd.committed.end());
    n.raft->Advance(rd);
    ++readies;
  }
  EXPECT_EQ(readies, 3);
  EXPECT_EQ(n.raft->applied_index(), 6u);
}

TEST(RaftReadyTest, RestartRestoresCommitAndSkipsApplied) {
  Config c = TestConfig(1, {1, 2, 3});
  Node n(c, Log({1, 1, 1, 1, 1}), HardState{1, 0, 4});
  EXPECT_EQ(n.raft->commit_index(), 4u);
  n.Drain();
  ASSERT_EQ(n.applied.size(), 4u);  // Applied from 0: entries 1..4.
  c.applied = 2;
  n.applied.clear();
  n.Restart(c);
  EXPECT_EQ(n.raft->applied_index(), 2u);
  n.Drain();
  ASSERT_EQ(n.applied.size(), 2u);
  EXPECT_EQ(n.applied[0].index, 3u);
  c.applied = 4;
  n.applied.clear();
  n.Restart(c);
  n.Drain();
  EXPECT_TRUE(n.applied.empty());
}

TEST(RaftReadyDeathTest, GetReadyTwiceWithoutAdvanceDies) {
  Node n(TestConfig(1, {1}));
  n.raft->Campaign();
  Ready rd = n.raft->GetReady();
  EXPECT_DEATH(n.raft->GetReady(), "before Advance");
}

// ---- Create and Step validation ----

TEST(RaftCreateTest, RejectsBadConfigs) {
  MemoryStorage s;
  auto bad = [&](auto mutate) {
    Config c = TestConfig(1, {1, 2, 3});
    mutate(c);
    return Raft::Create(c, &s).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(bad([](Config& c) { c.id = 0; }), kInvalid);
  EXPECT_EQ(bad([](Config& c) { c.voters = {1, 2, 2}; }), kInvalid);
  EXPECT_EQ(bad([](Config& c) { c.voters = {0, 1}; }), kInvalid);
  EXPECT_EQ(bad([](Config& c) { c.learners = {3}; }), kInvalid);
  EXPECT_EQ(bad([](Config& c) { c.snapshot_chunk_bytes = 0; }), kInvalid);
  EXPECT_EQ(bad([](Config& c) { c.snapshot_inflight_chunks_max = 0; }),
            kInvalid);
  EXPECT_EQ(bad([](Config& c) { c.snapshot_stall_ticks = 0; }), kInvalid);
  EXPECT_EQ(bad([](Config& c) { c.lease_reads = true; }), kInvalid)
      << "lease reads need check_quorum";
  EXPECT_EQ(bad([](Config& c) {
              c.lease_reads = c.check_quorum = true;
              c.lease_drift_margin_ticks = c.election_timeout_ticks;
            }),
            kInvalid);
  // A node waiting to join: not (yet) a member, or no membership at all.
  EXPECT_EQ(bad([](Config& c) { c.id = 4; }), absl::StatusCode::kOk);
  EXPECT_EQ(bad([](Config& c) { c.voters = {}; }), absl::StatusCode::kOk);
  EXPECT_EQ(bad([](Config& c) { c.election_timeout_ticks = 1; }), kInvalid);
  EXPECT_EQ(bad([](Config& c) { c.heartbeat_interval_ticks = 0; }), kInvalid);
  EXPECT_EQ(bad([](Config& c) { c.inflight_appends_max = 0; }), kInvalid);
  EXPECT_EQ(bad([](Config& c) { c.append_bytes_max = 0; }), kInvalid);
  EXPECT_EQ(bad([](Config& c) { c.append_entries_max = 1 << 20; }), kInvalid);
  EXPECT_EQ(bad([](Config& c) { c.proposal_bytes_max = 1ull << 40; }), kInvalid);
  EXPECT_EQ(bad([](Config& c) { c.pending_reads_max = 0; }), kInvalid);
  EXPECT_EQ(Raft::Create(TestConfig(1, {1}), nullptr).status().code(), kInvalid);
}

TEST(RaftCreateTest, RejectsInconsistentStorage) {
  auto create = [](const std::vector<Entry>& log, HardState hs,
                   Index applied) {
    MemoryStorage s;
    EXPECT_TRUE(s.Append(log).ok());
    s.SetHardState(hs);
    Config c = TestConfig(1, {1, 2, 3});
    c.applied = applied;
    return Raft::Create(c, &s).status().code();
  };
  EXPECT_EQ(create(Log({1, 1}), HardState{1, 0, 2}, 2), absl::StatusCode::kOk);
  EXPECT_EQ(create(Log({1, 1}), HardState{1, 0, 3}, 0),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(create(Log({1, 2}), HardState{1, 0, 0}, 0),
            absl::StatusCode::kDataLoss);
  // A vote for a node outside the bootstrap membership is fine: it may
  // have joined later.
  EXPECT_EQ(create(Log({1}), HardState{1, 9, 0}, 0), absl::StatusCode::kOk);
  EXPECT_EQ(create(Log({1, 1}), HardState{1, 0, 1}, 2),
            absl::StatusCode::kInvalidArgument);
}

TEST(RaftCreateTest, CompactedButUnappliedEntriesNeedASnapshot) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Log({1, 1, 1, 1})).ok());
  s.SetHardState(HardState{1, 0, 4});
  ASSERT_TRUE(s.Compact(3).ok());
  Config c = TestConfig(1, {1, 2, 3});
  c.applied = 1;
  EXPECT_EQ(Raft::Create(c, &s).status().code(),
            absl::StatusCode::kFailedPrecondition);
  c.applied = 2;
  EXPECT_TRUE(Raft::Create(c, &s).ok());
}

TEST(RaftStepTest, RejectsMalformedMessagesWithoutChangingState) {
  Node n(TestConfig(1, {1, 2, 3}));
  std::vector<Message> bad = {
      Msg(MessageType::kHeartbeat, 2, 3, 1),  // Not for us.
      Msg(MessageType::kHeartbeat, 1, 1, 1),  // From ourselves.
      Msg(MessageType::kHeartbeat, 2, 1, 0),  // Term 0.
      Msg(static_cast<MessageType>(42), 2, 1, 1),
      Append(2, 1, 1, 0, 0, 0, {Entry{1, 2, EntryType::kNormal, ""}}),
      Append(2, 1, 1, 0, 0, 0, {Entry{2, 1, EntryType::kNormal, ""}}),
      Append(2, 1, 1, 0, 0, 0, {Entry{1, 1, static_cast<EntryType>(9), ""}}),
      VoteRequest(2, 1, 3, 1, 3),  // Last log term not below the term.
  };
  Message hb_with_entries = Msg(MessageType::kHeartbeat, 2, 1, 1);
  hb_with_entries.entries = Log({1});
  bad.push_back(hb_with_entries);
  for (const Message& m : bad) {
    EXPECT_EQ(n.raft->Step(m).code(), absl::StatusCode::kInvalidArgument)
        << MessageTypeName(m.type) << " from " << m.from;
  }
  EXPECT_EQ(n.raft->term(), 0u);
  EXPECT_FALSE(n.raft->HasReady());
}

TEST(RaftStepTest, SecondLeaderInOneTermIsAnError) {
  Node n(TestConfig(1, {1, 2, 3}));
  ASSERT_TRUE(n.raft->Step(Msg(MessageType::kHeartbeat, 2, 1, 1)).ok());
  EXPECT_EQ(n.raft->Step(Msg(MessageType::kHeartbeat, 3, 1, 1)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(n.raft->leader(), 2u);
}

TEST(RaftStepTest, HeartbeatCommitBeyondLogIsAnError) {
  Node n(TestConfig(1, {1, 2, 3}), Log({1}), HardState{1, 0, 0});
  Message hb = Msg(MessageType::kHeartbeat, 2, 1, 1);
  hb.commit = 5;
  EXPECT_EQ(n.raft->Step(hb).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(n.raft->commit_index(), 0u);
}

// ---- Proposals ----

TEST(RaftProposeTest, LimitsAndRoles) {
  const std::vector<NodeId> voters = {1, 2};
  Config c = TestConfig(1, voters);
  c.proposal_bytes_max = 100;
  c.uncommitted_bytes_max = 3 * (100 + kEntryOverheadBytes);
  Node n(c);
  EXPECT_EQ(n.raft->Propose("x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  ElectLeader(n, voters);
  EXPECT_EQ(n.raft->Propose(std::string(101, 'x')).status().code(),
            absl::StatusCode::kInvalidArgument);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(n.raft->Propose(std::string(100, 'x')).ok());
  EXPECT_EQ(n.raft->Propose(std::string(100, 'x')).status().code(),
            absl::StatusCode::kResourceExhausted);
  // Once committed they no longer count.
  ASSERT_TRUE(n.raft->Step(AppendOk(2, 1, 1, 1)).ok());
  ASSERT_TRUE(n.raft->Step(AppendOk(2, 1, 1, 4)).ok());
  ASSERT_EQ(n.raft->commit_index(), 4u);
  EXPECT_TRUE(n.raft->Propose(std::string(100, 'x')).ok());
}

// ---- ReadIndex ----

TEST(RaftReadIndexTest, RolesAndContexts) {
  Node follower(TestConfig(2, {1, 2, 3}));
  EXPECT_EQ(follower.raft->ReadIndex(1).code(),
            absl::StatusCode::kFailedPrecondition);
  Node single(TestConfig(1, {1}));
  single.raft->Campaign();
  single.Drain();
  EXPECT_EQ(single.raft->ReadIndex(0).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(single.raft->ReadIndex(7).ok());
  single.Drain();
  ASSERT_EQ(single.reads.size(), 1u);
  EXPECT_EQ(single.reads[0].index, 1u);
  EXPECT_EQ(single.reads[0].context, 7u);
}

TEST(RaftReadIndexTest, WaitsForOwnTermCommitThenAQuorumHeartbeat) {
  const std::vector<NodeId> voters = {1, 2, 3};
  Node n(TestConfig(1, voters), Log({1, 1}), HardState{1, 0, 1});
  ElectLeader(n, voters);
  // The no-op (index 3) is not committed yet: the read waits.
  ASSERT_TRUE(n.raft->ReadIndex(5).ok());
  EXPECT_EQ(n.raft->ReadIndex(5).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(OfType(n.Drain(), MessageType::kHeartbeat).empty());
  ASSERT_TRUE(n.raft->Step(AppendOk(2, 1, 2, 3)).ok());
  ASSERT_EQ(n.raft->commit_index(), 3u);
  std::vector<Message> hb = OfType(n.Drain(), MessageType::kHeartbeat);
  ASSERT_EQ(hb.size(), 2u);
  EXPECT_EQ(hb[0].context, 5u);
  EXPECT_TRUE(n.reads.empty());
  // Leader + one follower is a quorum of three.
  ASSERT_TRUE(n.raft->Step(HeartbeatAck(3, 1, 2, 5)).ok());
  n.Drain();
  ASSERT_EQ(n.reads.size(), 1u);
  EXPECT_EQ(n.reads[0].index, 3u);
  EXPECT_EQ(n.reads[0].context, 5u);
}

TEST(RaftReadIndexTest, LaterConfirmationReleasesEarlierReadsInOrder) {
  const std::vector<NodeId> voters = {1, 2, 3, 4, 5};
  Node n(TestConfig(1, voters));
  ElectLeader(n, voters);
  ASSERT_TRUE(n.raft->Step(AppendOk(2, 1, 1, 1)).ok());
  ASSERT_TRUE(n.raft->Step(AppendOk(3, 1, 1, 1)).ok());
  ASSERT_EQ(n.raft->commit_index(), 1u);
  ASSERT_TRUE(n.raft->ReadIndex(10).ok());
  ASSERT_TRUE(n.raft->ReadIndex(11).ok());
  n.Drain();
  for (NodeId from : {2, 3}) {
    ASSERT_TRUE(n.raft->Step(HeartbeatAck(from, 1, 1, 11)).ok());
  }
  n.Drain();
  ASSERT_EQ(n.reads.size(), 2u);
  EXPECT_EQ(n.reads[0].context, 10u);
  EXPECT_EQ(n.reads[1].context, 11u);
}

TEST(RaftReadIndexTest, PendingReadsAreBoundedAndDroppedOnStepDown) {
  const std::vector<NodeId> voters = {1, 2, 3};
  Config c = TestConfig(1, voters);
  c.pending_reads_max = 2;
  Node n(c);
  ElectLeader(n, voters);
  ASSERT_TRUE(n.raft->Step(AppendOk(2, 1, 1, 1)).ok());
  ASSERT_TRUE(n.raft->ReadIndex(1).ok());
  ASSERT_TRUE(n.raft->ReadIndex(2).ok());
  EXPECT_EQ(n.raft->ReadIndex(3).code(), absl::StatusCode::kResourceExhausted);
  n.Drain();
  ASSERT_TRUE(n.raft->Step(Msg(MessageType::kHeartbeat, 2, 1, 2)).ok());
  ASSERT_EQ(n.raft->role(), Role::kFollower);
  // A late answer from the old term confirms nothing.
  ASSERT_TRUE(n.raft->Step(HeartbeatAck(3, 1, 1, 2)).ok());
  n.Drain();
  EXPECT_TRUE(n.reads.empty());
}

// ---- Storage errors ----

// A LogStorage that can start failing reads, as a corrupted pmem log would.
class FailingStorage : public LogStorage {
 public:
  explicit FailingStorage(const MemoryStorage* base) : base_(base) {}
  HardState InitialHardState() const override { return base_->InitialHardState(); }
  absl::StatusOr<std::vector<Entry>> Entries(Index lo, Index hi,
                                             uint64_t bytes_max) const override {
    if (fail) return absl::DataLossError("checksum mismatch at entry");
    return base_->Entries(lo, hi, bytes_max);
  }
  absl::StatusOr<Term> TermAt(Index i) const override {
    if (fail) return absl::DataLossError("checksum mismatch at entry");
    return base_->TermAt(i);
  }
  Index FirstIndex() const override { return base_->FirstIndex(); }
  Index LastIndex() const override { return base_->LastIndex(); }
  bool fail = false;

 private:
  const MemoryStorage* base_;
};

TEST(RaftStorageErrorTest, DataLossMakesTheRaftInert) {
  MemoryStorage base;
  ASSERT_TRUE(base.Append(Log({1, 1, 1})).ok());
  base.SetHardState(HardState{1, 0, 3});
  FailingStorage storage(&base);
  auto created = Raft::Create(TestConfig(1, {1, 2, 3}), &storage);
  ASSERT_TRUE(created.ok());
  Raft& raft = **created;
  storage.fail = true;
  // Handing out committed entries needs a read: it fails.
  EXPECT_TRUE(raft.HasReady());
  Ready rd = raft.GetReady();
  EXPECT_TRUE(rd.committed.empty());
  EXPECT_TRUE(rd.messages.empty());
  raft.Advance(rd);
  EXPECT_EQ(raft.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(raft.HasReady());
  EXPECT_EQ(raft.Step(Msg(MessageType::kHeartbeat, 2, 1, 1)).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(raft.ReadIndex(1).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(raft.Propose("x").status().code(), absl::StatusCode::kDataLoss);
  raft.Tick();
  raft.Campaign();
  EXPECT_EQ(raft.role(), Role::kFollower);
}

}  // namespace
}  // namespace blizzard::consensus
