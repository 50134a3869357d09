#include "tools/sim/kv_state_machine.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace blizzard::sim {
namespace {

consensus::Entry Batch(consensus::Index index, const std::vector<Command>& commands) {
  return consensus::Entry{1, index, consensus::EntryType::kNormal, EncodeBatch(commands)};
}

consensus::Entry Noop(consensus::Index index) {
  return consensus::Entry{1, index, consensus::EntryType::kNoop, ""};
}

Command Put(uint64_t client, uint64_t seq, std::string key, std::string value) {
  return Command{client, seq, OpKind::kPut, std::move(key), std::move(value), std::nullopt};
}

Command Append(uint64_t client, uint64_t seq, std::string key, std::string value) {
  return Command{client, seq, OpKind::kAppend, std::move(key), std::move(value), std::nullopt};
}

TEST(KvStateMachineTest, AppliesEveryKind) {
  KvStateMachine sm;
  auto r = sm.Apply(Noop(1));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  r = sm.Apply(Batch(2, {Put(1, 1, "a", "x"), Append(2, 1, "a", "y"), Append(3, 1, "b", "z"),
                         Command{4, 1, OpKind::kDelete, "nope", "", std::nullopt},
                         Command{5, 1, OpKind::kCas, "a", "w", std::string("xy")},
                         Command{6, 1, OpKind::kCas, "a", "q", std::string("xy")},
                         Command{7, 1, OpKind::kCas, "c", "new", std::nullopt},
                         Command{8, 1, OpKind::kDelete, "b", "", std::nullopt}}));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 8u);
  EXPECT_FALSE((*r)[3].result.ok);  // Deleting a missing key.
  EXPECT_TRUE((*r)[4].result.ok);   // "xy" -> "w".
  EXPECT_FALSE((*r)[5].result.ok);  // No longer "xy".
  EXPECT_TRUE((*r)[6].result.ok);   // Absent -> "new".
  EXPECT_TRUE((*r)[7].result.ok);   // "b" existed.
  for (const AppliedCommand& a : *r) EXPECT_EQ(a.outcome, ApplyOutcome::kExecuted);
  EXPECT_EQ(sm.applied_index(), 2u);
  EXPECT_EQ(sm.Read("a"), (CommandResult{true, "w"}));
  EXPECT_EQ(sm.Read("b"), (CommandResult{false, ""}));
  EXPECT_EQ(sm.Read("c"), (CommandResult{true, "new"}));
}

TEST(KvStateMachineTest, RetriesAreAnsweredFromTheSessionTableNeverAppliedTwice) {
  KvStateMachine sm;
  ASSERT_TRUE(sm.Apply(Batch(1, {Append(1, 1, "k", "a")})).ok());
  // The same request again (a retry that raced into the log).
  auto r = sm.Apply(Batch(2, {Append(1, 1, "k", "a")}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].outcome, ApplyOutcome::kDuplicate);
  EXPECT_EQ(sm.Read("k").value, "a");
  // A cas's recorded result is what a retry gets, even once it would fail.
  ASSERT_TRUE(sm.Apply(Batch(3, {Command{1, 2, OpKind::kCas, "k", "b", std::string("a")}})).ok());
  r = sm.Apply(Batch(4, {Command{1, 2, OpKind::kCas, "k", "b", std::string("a")}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].outcome, ApplyOutcome::kDuplicate);
  EXPECT_TRUE((*r)[0].result.ok);
  EXPECT_EQ(sm.Read("k").value, "b");
  // An older seq is stale.
  r = sm.Apply(Batch(5, {Append(1, 1, "k", "a")}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].outcome, ApplyOutcome::kStale);
  EXPECT_EQ(sm.Read("k").value, "b");
  const SessionRecord* s = sm.FindSession(1);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->last_seq, 2u);
  EXPECT_EQ(s->last_index, 3u);
  EXPECT_EQ(sm.FindSession(2), nullptr);
}

TEST(KvStateMachineTest, SessionsSurviveACrashUnlessPlantedBug) {
  KvStateMachine durable;
  KvStateMachine buggy(KvStateMachineOptions{.sessions_durable = false});
  for (KvStateMachine* sm : {&durable, &buggy}) {
    ASSERT_TRUE(sm->Apply(Batch(1, {Append(1, 1, "k", "a")})).ok());
    sm->Crash();
    ASSERT_TRUE(sm->Apply(Batch(2, {Append(1, 1, "k", "a")})).ok());
  }
  EXPECT_EQ(durable.Read("k").value, "a");
  EXPECT_EQ(buggy.Read("k").value, "aa");  // Applied twice: what the simulator must catch.
  EXPECT_EQ(durable.applied_index(), buggy.applied_index());
}

TEST(KvStateMachineTest, NoDedupPlantedBugAppliesTwice) {
  KvStateMachine sm(KvStateMachineOptions{.deduplicate = false});
  ASSERT_TRUE(sm.Apply(Batch(1, {Append(1, 1, "k", "a"), Append(1, 1, "k", "a")})).ok());
  EXPECT_EQ(sm.Read("k").value, "aa");
}

TEST(KvStateMachineTest, HashesAgreeIffStatesAgree) {
  KvStateMachine a;
  KvStateMachine b;
  ASSERT_TRUE(a.Apply(Batch(1, {Put(1, 1, "x", "1"), Put(2, 1, "y", "2")})).ok());
  ASSERT_TRUE(b.Apply(Batch(1, {Put(2, 1, "y", "2"), Put(1, 1, "x", "1")})).ok());
  EXPECT_EQ(a.DataHash(), b.DataHash());
  EXPECT_EQ(a.SessionsHash(), b.SessionsHash());
  KvStateMachine c;
  ASSERT_TRUE(c.Apply(Batch(1, {Put(1, 1, "x", "12"), Put(2, 1, "y", "")})).ok());
  EXPECT_NE(a.DataHash(), c.DataHash());  // Same bytes, other split.
  KvStateMachine d;
  ASSERT_TRUE(d.Apply(Noop(1)).ok());
  ASSERT_TRUE(d.Apply(Batch(2, {Put(1, 1, "x", "1"), Put(2, 1, "y", "2")})).ok());
  EXPECT_NE(a.DataHash(), d.DataHash());      // The applied index counts.
  EXPECT_NE(a.SessionsHash(), d.SessionsHash());  // So does each session's index.
}

TEST(KvStateMachineTest, BadEntryAppliesNothing) {
  KvStateMachine sm;
  consensus::Entry bad{1, 1, consensus::EntryType::kNormal, "junk"};
  EXPECT_FALSE(sm.Apply(bad).ok());
  EXPECT_EQ(sm.applied_index(), 0u);
  EXPECT_TRUE(sm.data().empty());
}

TEST(KvStateMachineTest, SessionEvictionIsDeterministic) {
  KvStateMachine sm(KvStateMachineOptions{.sessions_max = 2});
  ASSERT_TRUE(sm.Apply(Batch(1, {Put(1, 1, "k", "a")})).ok());
  ASSERT_TRUE(sm.Apply(Batch(2, {Put(2, 1, "k", "b")})).ok());
  ASSERT_TRUE(sm.Apply(Batch(3, {Put(1, 2, "k", "c")})).ok());
  ASSERT_TRUE(sm.Apply(Batch(4, {Put(3, 1, "k", "d")})).ok());
  EXPECT_EQ(sm.sessions().size(), 2u);
  EXPECT_EQ(sm.FindSession(2), nullptr);  // Applied longest ago.
  EXPECT_NE(sm.FindSession(1), nullptr);
}

TEST(KvStateMachineTest, SnapshotsRoundTripAndRejectDamage) {
  KvStateMachine sm;
  ASSERT_TRUE(sm.Apply(Batch(1, {Put(1, 1, "a", "x"), Append(2, 1, "b", "")})).ok());
  ASSERT_TRUE(sm.Apply(Batch(2, {Command{3, 4, OpKind::kCas, "a", "y", std::string("x")}})).ok());
  const std::string bytes = sm.Serialize();
  KvStateMachine copy;
  ASSERT_TRUE(copy.Restore(bytes).ok());
  EXPECT_EQ(copy.applied_index(), 2u);
  EXPECT_EQ(copy.data(), sm.data());
  EXPECT_EQ(copy.sessions(), sm.sessions());
  EXPECT_EQ(copy.DataHash(), sm.DataHash());
  EXPECT_EQ(copy.SessionsHash(), sm.SessionsHash());
  EXPECT_EQ(copy.Serialize(), bytes);
  // The restored session table still deduplicates.
  auto r = copy.Apply(Batch(3, {Command{3, 4, OpKind::kCas, "a", "y", std::string("x")}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].outcome, ApplyOutcome::kDuplicate);
  EXPECT_TRUE((*r)[0].result.ok);

  for (size_t n = 0; n < bytes.size(); ++n) {
    KvStateMachine target;
    ASSERT_TRUE(target.Apply(Noop(1)).ok());
    EXPECT_FALSE(target.Restore(bytes.substr(0, n)).ok()) << n;
    EXPECT_EQ(target.applied_index(), 1u);  // Unchanged on error.
  }
  EXPECT_FALSE(copy.Restore(bytes + "x").ok());
}

}  // namespace
}  // namespace blizzard::sim
