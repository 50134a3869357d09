#include "node/session_table.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace blizzard::node {
namespace {

using structures::Op;
using structures::OpCode;
using structures::OpResult;

class SessionTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/dev/shm/blizzard_session_table_test_" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    options_.path = dir_ + "/data.pool";
    options_.pool_bytes = 16u << 20;
    options_.cluster_id = 1;
    options_.node_id = 1;
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen(size_t sessions_max = 3) {
    store_.reset();
    auto s = structures::KvStore::Open(options_);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    table_ = std::make_unique<SessionTable>(sessions_max);
    ASSERT_TRUE(table_->Load(*store_).ok());
  }
  // What the node's replication does with one entry.
  std::vector<OpResult> Apply(std::vector<Op> ops) {
    auto plan = table_->PlanBatch(std::move(ops));
    EXPECT_TRUE(plan.ok()) << plan.status();
    const uint64_t index = store_->AppliedIndex() + 1;
    auto results = store_->ApplyBatch(index, plan->execute, [&](absl::Span<const OpResult> r) {
      return table_->RecordOps(*plan, r, index);
    });
    EXPECT_TRUE(results.ok()) << results.status();
    table_->Commit();
    return table_->Results(*plan, *results);
  }
  static Op Incr(const std::string& key) { return Op{OpCode::kIncrBy, {key}, 1}; }
  static std::vector<Op> Tagged(uint64_t client, uint64_t seq, Op op) {
    std::vector<Op> batch;
    SessionTable::AppendTagged(batch, client, seq, std::move(op));
    return batch;
  }

  std::string dir_;
  structures::StoreOptions options_;
  std::unique_ptr<structures::KvStore> store_;
  std::unique_ptr<SessionTable> table_;
};

TEST_F(SessionTableTest, RetryIsAnsweredFromTheTableAndNotAppliedTwice) {
  EXPECT_EQ(Apply(Tagged(7, 1, Incr("n")))[0].integer, 1);
  // The same (client, seq) again, in a later entry and after a restart.
  EXPECT_EQ(Apply(Tagged(7, 1, Incr("n")))[0].integer, 1);
  Reopen();
  ASSERT_NE(table_->Find(7), nullptr);
  EXPECT_EQ(table_->Find(7)->seq, 1u);
  EXPECT_EQ(Apply(Tagged(7, 1, Incr("n")))[0].integer, 1);
  EXPECT_EQ(store_->Get("n"), "1");
  EXPECT_EQ(Apply(Tagged(7, 2, Incr("n")))[0].integer, 2);
  // An older seq gets an error and changes nothing.
  const OpResult stale = Apply(Tagged(7, 1, Incr("n")))[0];
  EXPECT_EQ(stale.kind, OpResult::Kind::kError);
  EXPECT_NE(stale.text.find("stale"), std::string::npos);
  EXPECT_EQ(store_->Get("n"), "2");
  // Untagged ops run every time.
  EXPECT_EQ(Apply({Incr("n")})[0].integer, 3);
}

TEST_F(SessionTableTest, RetryInTheSameBatchGetsTheFirstResult) {
  std::vector<Op> batch = Tagged(5, 1, Incr("x"));
  SessionTable::AppendTagged(batch, 5, 1, Incr("x"));
  batch.push_back(Incr("y"));
  SessionTable::AppendTagged(batch, 6, 1, Incr("x"));
  const std::vector<OpResult> r = Apply(batch);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].integer, 1);
  EXPECT_EQ(r[1].integer, 1);
  EXPECT_EQ(r[2].integer, 1);
  EXPECT_EQ(r[3].integer, 2);
  EXPECT_EQ(store_->Get("x"), "2");
  EXPECT_EQ(table_->retries_answered(), 1u);
}

TEST_F(SessionTableTest, EvictionIsLeastRecentlyAppliedAndSurvivesReopen) {
  Apply(Tagged(1, 1, Incr("a")));  // index 1
  Apply(Tagged(2, 1, Incr("a")));  // index 2
  Apply(Tagged(3, 1, Incr("a")));  // index 3
  Apply(Tagged(1, 2, Incr("a")));  // index 4: client 1 is now the most recent
  Apply(Tagged(4, 1, Incr("a")));  // evicts client 2 (index 2)
  EXPECT_EQ(table_->size(), 3u);
  EXPECT_EQ(table_->Find(2), nullptr);
  EXPECT_NE(table_->Find(1), nullptr);
  const uint64_t hash = store_->StateHash();
  Reopen();
  EXPECT_EQ(table_->size(), 3u);
  EXPECT_EQ(table_->Find(2), nullptr);
  EXPECT_EQ(store_->StateHash(), hash);
  // An evicted session's retry is applied again: the documented limit.
  EXPECT_EQ(Apply(Tagged(2, 1, Incr("a")))[0].integer, 6);
}

// Array replies (LPOP/RPOP with a count, ZPOPMIN/ZPOPMAX) are recorded
// with their items and survive a reopen; the nil array too. (Records once
// kept only the kind, so a retry got an empty array and the reopen refused
// the pool.) Refresh re-reads a record the store changed behind the table.
TEST_F(SessionTableTest, ArrayResultsAreRecordedAndSurviveReopen) {
  Apply({Op{OpCode::kRPush, {"l", "a", "b", "c"}, 0}});
  const OpResult popped = Apply(Tagged(9, 1, Op{OpCode::kLPop, {"l"}, 2}))[0];
  ASSERT_EQ(popped.kind, OpResult::Kind::kArray);
  EXPECT_EQ(popped.items, (std::vector<std::string>{"a", "b"}));
  const OpResult none = Apply(Tagged(10, 1, Op{OpCode::kLPop, {"nolist"}, 2}))[0];
  EXPECT_EQ(none.kind, OpResult::Kind::kNilArray);
  Reopen();
  EXPECT_EQ(Apply(Tagged(9, 1, Op{OpCode::kLPop, {"l"}, 2}))[0], popped);
  EXPECT_EQ(Apply(Tagged(10, 1, Op{OpCode::kLPop, {"nolist"}, 2}))[0], none);
  EXPECT_EQ(store_->ListLength("l"), 1u);
  // A second table over the same store, behind by one change, catches up
  // with Refresh; Restore puts back what it replaced.
  SessionTable other(3);
  ASSERT_TRUE(other.Load(*store_).ok());
  Apply(Tagged(9, 2, Op{OpCode::kRPop, {"l"}, 5}));
  EXPECT_EQ(other.Find(9)->seq, 1u);
  std::vector<SessionTable::Saved> undo;
  ASSERT_TRUE(other.Refresh(*store_, {9, 77}, &undo).ok());
  EXPECT_EQ(other.Find(9)->seq, 2u);
  EXPECT_EQ(other.Find(9)->result, table_->Find(9)->result);
  EXPECT_EQ(other.Find(77), nullptr);
  other.Restore(std::move(undo));
  EXPECT_EQ(other.Find(9)->seq, 1u);
  EXPECT_EQ(other.Find(9)->result, popped);
}

TEST_F(SessionTableTest, MalformedTagsAndReservedKeysAreRefused) {
  std::vector<Op> batch = Tagged(1, 1, Incr("a"));
  batch.pop_back();  // A tag with nothing after it.
  EXPECT_FALSE(table_->PlanBatch(batch).ok());
  batch = Tagged(1, 1, Incr("a"));
  batch[0].args[1] = "short";
  EXPECT_FALSE(table_->PlanBatch(batch).ok());
  batch = Tagged(1, 1, Incr("a"));
  batch[0].args[1] = std::string(16, '\0');  // Client 0.
  EXPECT_FALSE(table_->PlanBatch(batch).ok());
  const std::string reserved = std::string(kReservedPrefix) + "s12345678";
  EXPECT_TRUE(IsReservedArgument(reserved));
  EXPECT_FALSE(IsReservedArgument("plain"));
  EXPECT_FALSE(IsReservedArgument(std::string(kReservedPrefix).substr(0, 4)));
  EXPECT_FALSE(table_->PlanBatch({Op{OpCode::kSet, {reserved, "x"}, 0}}).ok());
}

}  // namespace
}  // namespace blizzard::node
