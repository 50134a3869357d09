#include "tools/sim/safety_checker.h"

#include <memory>
#include <string>
#include <vector>

#include "consensus/raft.h"
#include "consensus/storage.h"
#include "gtest/gtest.h"
#include "tools/sim/command.h"

namespace blizzard::sim {
namespace {

using consensus::Entry;
using consensus::EntryType;
using consensus::HardState;
using consensus::MemoryStorage;
using consensus::Message;
using consensus::MessageType;

Entry E(uint64_t index, uint64_t term, std::string data = "") {
  return Entry{term, index, data.empty() ? EntryType::kNoop : EntryType::kNormal, std::move(data)};
}

// Entry `index` (term 1) carrying one write.
Entry Write(uint64_t index, const Command& c) {
  return Entry{1, index, EntryType::kNormal, EncodeBatch({c})};
}

Message M(MessageType type, uint64_t from, uint64_t to, uint64_t term) {
  Message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = term;
  return m;
}

// A single-voter Raft on `storage` that campaigns and drains its Readies:
// it leads a new term and commits everything in its log.
std::unique_ptr<consensus::Raft> SoleLeader(uint64_t id, MemoryStorage* storage) {
  consensus::Config c;
  c.id = id;
  c.voters = {id};
  auto raft = consensus::Raft::Create(c, storage);
  EXPECT_TRUE(raft.ok()) << raft.status();
  (*raft)->Campaign();
  while ((*raft)->HasReady()) {
    consensus::Ready rd = (*raft)->GetReady();
    EXPECT_TRUE(storage->Append(rd.entries).ok());
    if (rd.hard_state) storage->SetHardState(*rd.hard_state);
    (*raft)->Advance(rd);
  }
  EXPECT_EQ((*raft)->role(), consensus::Role::kLeader);
  return std::move(*raft);
}

TEST(SafetyCheckerTest, TwoLeadersInOneTerm) {
  SafetyChecker c(false);
  MemoryStorage s;
  c.OnSend(1, M(MessageType::kHeartbeat, 1, 2, 3), s);
  c.OnSend(1, M(MessageType::kAppend, 1, 3, 3), s);
  EXPECT_FALSE(c.failed());
  c.OnSend(2, M(MessageType::kAppend, 2, 3, 4), s);
  EXPECT_FALSE(c.failed());
  c.OnSend(2, M(MessageType::kHeartbeat, 2, 1, 3), s);
  ASSERT_TRUE(c.failed());
  EXPECT_EQ(c.first().check, "election-safety");
}

TEST(SafetyCheckerTest, LeaderCompleteness) {
  SafetyChecker c;
  MemoryStorage a;
  ASSERT_TRUE(a.Append({E(1, 1, "x"), E(2, 1, "y")}).ok());
  a.SetHardState(HardState{1, 0, 2});
  auto leader_a = SoleLeader(1, &a);  // Term 2, commits 1..3.
  c.OnNodeState(1, *leader_a);
  EXPECT_EQ(c.commit_known(), 3u);
  MemoryStorage b;  // A later leader with an empty log.
  b.SetHardState(HardState{5, 0, 0});
  auto leader_b = SoleLeader(2, &b);
  c.OnNodeState(2, *leader_b);
  ASSERT_TRUE(c.failed());
  EXPECT_EQ(c.first().check, "leader-completeness");
}

TEST(SafetyCheckerTest, LogMatchingOnPersist) {
  SafetyChecker c;
  MemoryStorage a;
  MemoryStorage b;
  c.OnPersist(1, {E(1, 1, "x"), E(2, 1, "y")}, a);
  ASSERT_TRUE(a.Append({E(1, 1, "x"), E(2, 1, "y")}).ok());
  c.OnPersist(2, {E(1, 1, "x"), E(2, 1, "y")}, b);
  EXPECT_FALSE(c.failed());
  c.OnPersist(2, {E(2, 1, "other")}, b);  // Same (index, term), other content.
  ASSERT_TRUE(c.failed());
  EXPECT_EQ(c.first().check, "log-matching");

  SafetyChecker d;
  MemoryStorage x;
  MemoryStorage y;
  ASSERT_TRUE(x.Append({E(1, 1, "a")}).ok());
  ASSERT_TRUE(y.Append({E(1, 2, "b")}).ok());
  d.OnPersist(1, {E(2, 3, "c")}, x);
  d.OnPersist(2, {E(2, 3, "c")}, y);  // Same entry after a different term.
  ASSERT_TRUE(d.failed());
  EXPECT_EQ(d.first().check, "log-matching");

  SafetyChecker e;
  MemoryStorage z;
  e.OnPersist(1, {E(2, 1, "gap")}, z);
  EXPECT_TRUE(e.failed());
}

TEST(SafetyCheckerTest, FullLogMatching) {
  MemoryStorage a;
  MemoryStorage b;
  ASSERT_TRUE(a.Append({E(1, 1, "x"), E(2, 1, "y"), E(3, 2, "z")}).ok());
  ASSERT_TRUE(b.Append({E(1, 1, "x"), E(2, 1, "q"), E(3, 2, "z")}).ok());
  SafetyChecker c;
  c.CheckLogMatching({{1, &a}, {2, &b}});
  ASSERT_TRUE(c.failed());
  EXPECT_EQ(c.first().check, "log-matching");
  MemoryStorage d;
  ASSERT_TRUE(d.Append({E(1, 1, "x"), E(2, 1, "y"), E(3, 3, "w")}).ok());
  SafetyChecker ok;
  ok.CheckLogMatching({{1, &a}, {3, &d}});  // Diverging after a common prefix: fine.
  EXPECT_FALSE(ok.failed());
}

TEST(SafetyCheckerTest, RecoveryMustHoldOnlyPersistedEntriesAndGivenVotes) {
  SafetyChecker c;
  MemoryStorage before;
  c.OnPersist(1, {E(1, 1, "x")}, before);
  MemoryStorage recovered;
  ASSERT_TRUE(recovered.Append({E(1, 1, "x")}).ok());
  recovered.SetHardState(HardState{2, 3, 1});
  c.OnSend(1, M(MessageType::kVoteResponse, 1, 3, 2), recovered);
  c.OnRecovered(1, recovered);
  EXPECT_FALSE(c.failed()) << c.first().detail;
  recovered.SetHardState(HardState{2, 0, 1});  // The vote was lost.
  c.OnRecovered(1, recovered);
  ASSERT_TRUE(c.failed());
  EXPECT_EQ(c.first().check, "vote-durability");

  SafetyChecker d;
  MemoryStorage junk;
  ASSERT_TRUE(junk.Append({E(1, 1, "never persisted")}).ok());
  d.OnRecovered(1, junk);
  ASSERT_TRUE(d.failed());
  EXPECT_EQ(d.first().check, "recovery");
}

TEST(SafetyCheckerTest, DoubleVote) {
  SafetyChecker c(false);
  MemoryStorage s;
  c.OnSend(1, M(MessageType::kVoteResponse, 1, 2, 4), s);
  c.OnSend(1, M(MessageType::kVoteResponse, 1, 2, 4), s);  // Again to the same: fine.
  EXPECT_FALSE(c.failed());
  c.OnSend(1, M(MessageType::kVoteResponse, 1, 3, 4), s);
  ASSERT_TRUE(c.failed());
  EXPECT_EQ(c.first().check, "double-vote");
}

TEST(SafetyCheckerTest, PersistBeforeSend) {
  MemoryStorage s;
  s.SetHardState(HardState{3, 2, 0});
  ASSERT_TRUE(s.Append({E(1, 1, "x")}).ok());
  {
    SafetyChecker c;
    c.OnSend(1, M(MessageType::kVoteResponse, 1, 2, 3), s);  // Durable: ok.
    Message ack = M(MessageType::kAppendResponse, 1, 2, 3);
    ack.index = 1;
    c.OnSend(1, ack, s);
    c.OnSend(1, M(MessageType::kPreVote, 1, 2, 9), s);  // Pre-votes change nothing.
    EXPECT_FALSE(c.failed()) << c.first().detail;
  }
  {
    SafetyChecker c;
    Message ack = M(MessageType::kAppendResponse, 1, 2, 3);
    ack.index = 2;  // Beyond the durable log.
    c.OnSend(1, ack, s);
    ASSERT_TRUE(c.failed());
    EXPECT_EQ(c.first().check, "persist-before-send");
  }
  {
    SafetyChecker c;
    c.OnSend(1, M(MessageType::kVoteResponse, 1, 3, 3), s);  // Durable vote is for 2.
    ASSERT_TRUE(c.failed());
  }
  {
    SafetyChecker c;
    c.OnSend(1, M(MessageType::kHeartbeat, 1, 2, 4), s);  // Term not durable.
    ASSERT_TRUE(c.failed());
    SafetyChecker off(false);
    off.OnSend(1, M(MessageType::kHeartbeat, 1, 2, 4), s);
    EXPECT_FALSE(off.failed());
  }
}

TEST(SafetyCheckerTest, StateMachineSafetyAndExactlyOnce) {
  const Command put{1001, 1, OpKind::kPut, "k", "v", std::nullopt};
  const Entry e1 = Write(1, put);
  KvStateMachine a;
  KvStateMachine b;
  SafetyChecker c;
  auto ra = a.Apply(e1);
  c.OnApplied(1, e1, *ra, a);
  auto rb = b.Apply(e1);
  c.OnApplied(2, e1, *rb, b);
  EXPECT_FALSE(c.failed());
  c.CheckAcknowledged({{1001, 1}}, {1, 2});
  EXPECT_FALSE(c.failed());
  c.CheckAcknowledged({{1001, 2}}, {1, 2});
  ASSERT_TRUE(c.failed());
  EXPECT_EQ(c.first().check, "acknowledged-write-lost");

  SafetyChecker d;
  KvStateMachine x;
  KvStateMachine y;
  const Entry other = Write(1, Command{1001, 1, OpKind::kPut, "k", "w", std::nullopt});
  d.OnApplied(1, e1, *x.Apply(e1), x);
  d.OnApplied(2, other, *y.Apply(other), y);
  ASSERT_TRUE(d.failed());
  EXPECT_EQ(d.first().check, "state-machine-safety");

  SafetyChecker f;
  KvStateMachine twice(KvStateMachineOptions{.deduplicate = false});
  f.OnApplied(1, e1, *twice.Apply(e1), twice);
  const Entry again = Write(2, put);
  f.OnApplied(1, again, *twice.Apply(again), twice);
  ASSERT_TRUE(f.failed());
  EXPECT_EQ(f.first().check, "exactly-once");
}

TEST(SafetyCheckerTest, DivergingStateHashes) {
  // Same entry, different results: a replica with a lost session table.
  const Command append{1001, 1, OpKind::kAppend, "k", "v", std::nullopt};
  const Entry e1 = Write(1, append);
  const Entry e2 = Write(2, append);
  KvStateMachine good;
  KvStateMachine bad(KvStateMachineOptions{.sessions_durable = false});
  SafetyChecker c;
  c.OnApplied(1, e1, *good.Apply(e1), good);
  c.OnApplied(1, e2, *good.Apply(e2), good);
  c.OnApplied(2, e1, *bad.Apply(e1), bad);
  bad.Crash();
  c.OnApplied(2, e2, *bad.Apply(e2), bad);
  ASSERT_TRUE(c.failed());
  EXPECT_EQ(c.first().check, "state-hash");
}

TEST(SafetyCheckerTest, SnapshotsMustMatchWhatWasApplied) {
  const Command put{1001, 1, OpKind::kPut, "k", "v", std::nullopt};
  const Entry e1 = Write(1, put);
  KvStateMachine leader;
  SafetyChecker c;
  c.OnApplied(1, e1, *leader.Apply(e1), leader);
  KvStateMachine follower;
  ASSERT_TRUE(follower.Restore(leader.Serialize()).ok());
  const consensus::SnapshotMeta meta{1, 1, consensus::Membership{{1, 2}, {}}, 0};
  c.OnSnapshotInstalled(2, meta, follower);
  EXPECT_FALSE(c.failed()) << c.first().detail;
  c.CheckAcknowledged({{1001, 1}}, {1, 2});  // Executed on 2 through the snapshot.
  EXPECT_FALSE(c.failed()) << c.first().detail;

  KvStateMachine wrong;
  ASSERT_TRUE(wrong.Apply(Entry{1, 1, EntryType::kNoop, ""}).ok());
  c.OnSnapshotInstalled(3, meta, wrong);
  ASSERT_TRUE(c.failed());
  EXPECT_EQ(c.first().check, "state-hash");
  SafetyChecker d;
  d.OnSnapshotInstalled(2, meta, follower);  // Nobody applied 1.
  EXPECT_TRUE(d.failed());
}

}  // namespace
}  // namespace blizzard::sim
