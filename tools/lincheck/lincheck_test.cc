#include "tools/lincheck/lincheck.h"

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace blizzard::lincheck {
namespace {

Operation Put(uint64_t c, std::string k, std::string v, int64_t call, int64_t ret) {
  Operation op;
  op.client = c;
  op.kind = OpKind::kPut;
  op.key = std::move(k);
  op.value = std::move(v);
  op.call_time = call;
  op.return_time = ret;
  return op;
}

Operation Get(uint64_t c, std::string k, std::optional<std::string> out, int64_t call,
              int64_t ret) {
  Operation op;
  op.client = c;
  op.kind = OpKind::kGet;
  op.key = std::move(k);
  op.output_value = std::move(out);
  op.call_time = call;
  op.return_time = ret;
  return op;
}

Operation Unknown(Operation op) {
  op.known = false;
  return op;
}

bool Linearizable(const std::vector<Operation>& h) {
  absl::StatusOr<CheckResult> r = CheckHistory(h);
  EXPECT_TRUE(r.ok()) << r.status();
  if (r.ok() && !r->linearizable) std::cerr << r->explanation;
  return r.ok() && r->linearizable;
}

TEST(LincheckTest, EmptyAndSequentialHistoriesAreLinearizable) {
  EXPECT_TRUE(Linearizable({}));
  EXPECT_TRUE(Linearizable({Put(1, "x", "1", 0, 1), Get(1, "x", "1", 2, 3),
                            Get(2, "y", std::nullopt, 4, 5)}));
}

TEST(LincheckTest, StaleReadAfterAcknowledgedWriteIsFlagged) {
  // Put(x,1) returned at 10; a read invoked at 20 still sees the old value.
  std::vector<Operation> h = {Put(1, "x", "0", 0, 1), Put(1, "x", "1", 5, 10),
                              Get(2, "x", "0", 20, 25)};
  absl::StatusOr<CheckResult> r = CheckHistory(h);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->linearizable);
  EXPECT_EQ(r->key, "x");
  EXPECT_NE(r->explanation.find("get(x)"), std::string::npos);
}

TEST(LincheckTest, LostAcknowledgedWriteIsFlagged) {
  std::vector<Operation> h = {Put(1, "x", "a", 0, 5), Get(2, "x", std::nullopt, 10, 12)};
  EXPECT_FALSE(Linearizable(h));
}

TEST(LincheckTest, ConcurrentReadMaySeeEitherValue) {
  // The read overlaps the write: old and new are both fine.
  EXPECT_TRUE(Linearizable({Put(1, "x", "0", 0, 1), Put(1, "x", "1", 5, 20),
                            Get(2, "x", "0", 10, 15)}));
  EXPECT_TRUE(Linearizable({Put(1, "x", "0", 0, 1), Put(1, "x", "1", 5, 20),
                            Get(2, "x", "1", 10, 15)}));
}

TEST(LincheckTest, ReadsMustNotGoBackInTime) {
  // Two sequential reads during a long write: new then old is not allowed.
  EXPECT_FALSE(Linearizable({Put(1, "x", "0", 0, 1), Put(1, "x", "1", 5, 100),
                             Get(2, "x", "1", 10, 15), Get(2, "x", "0", 20, 25)}));
}

TEST(LincheckTest, UnknownOutcomeWriteMayApplyLateOrNever) {
  Operation w = Unknown(Put(1, "x", "1", 5, 0));
  // Never applied.
  EXPECT_TRUE(Linearizable({Put(1, "x", "0", 0, 1), w, Get(2, "x", "0", 50, 60)}));
  // Applied long after the client gave up.
  EXPECT_TRUE(Linearizable({Put(1, "x", "0", 0, 1), w, Get(2, "x", "0", 50, 60),
                            Get(2, "x", "1", 70, 80)}));
  // But not before it was invoked.
  EXPECT_FALSE(Linearizable({Put(1, "x", "0", 0, 1), Get(2, "x", "1", 2, 3), w}));
}

TEST(LincheckTest, AppendDeleteAndCas) {
  Operation a1;
  a1.kind = OpKind::kAppend;
  a1.key = "k";
  a1.value = "ab";
  a1.call_time = 0;
  a1.return_time = 1;
  Operation a2 = a1;
  a2.value = "c";
  a2.call_time = 2;
  a2.return_time = 3;
  EXPECT_TRUE(Linearizable({a1, a2, Get(1, "k", "abc", 4, 5)}));
  EXPECT_FALSE(Linearizable({a1, a2, Get(1, "k", "cab", 4, 5)}));

  Operation del;
  del.kind = OpKind::kDelete;
  del.key = "k";
  del.output_ok = true;
  del.call_time = 6;
  del.return_time = 7;
  EXPECT_TRUE(Linearizable({a1, del, Get(1, "k", std::nullopt, 8, 9)}));
  Operation del_missing = del;
  del_missing.output_ok = true;  // Claims it existed, but nothing was written.
  EXPECT_FALSE(Linearizable({del_missing}));

  Operation cas;
  cas.kind = OpKind::kCas;
  cas.key = "k";
  cas.expected = "ab";
  cas.value = "z";
  cas.output_ok = true;
  cas.call_time = 2;
  cas.return_time = 3;
  EXPECT_TRUE(Linearizable({a1, cas, Get(1, "k", "z", 4, 5)}));
  Operation cas_fail = cas;
  cas_fail.output_ok = false;  // Must have swapped: the value was "ab".
  EXPECT_FALSE(Linearizable({a1, cas_fail}));
  Operation cas_absent = cas;
  cas_absent.expected = std::nullopt;
  cas_absent.output_ok = true;
  EXPECT_TRUE(Linearizable({cas_absent, Get(1, "k", "z", 4, 5)}));
}

TEST(LincheckTest, RejectsMalformedHistory) {
  EXPECT_FALSE(CheckHistory({Put(1, "x", "0", 5, 1)}).ok());
}

TEST(LincheckTest, StepBudgetGivesDeadlineExceeded) {
  std::vector<Operation> h;
  for (int i = 0; i < 40; ++i) h.push_back(Put(i, "x", std::to_string(i), 0, 1000));
  h.push_back(Get(99, "x", "impossible", 2000, 2001));
  CheckOptions o;
  o.steps_per_key_max = 1000;
  absl::StatusOr<CheckResult> r = CheckHistory(h, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
}

// Random concurrent histories produced by a real sequential execution with
// each operation's interval stretched around its linearization point are
// linearizable; corrupting one read's output to a never-written value makes
// them not.
TEST(LincheckTest, RandomHistoriesFromARealExecution) {
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    std::mt19937_64 rng(seed);
    std::map<std::string, std::string> model;
    std::vector<Operation> h;
    for (int t = 0; t < 60; ++t) {
      const int64_t point = t * 10;
      Operation op;
      op.client = rng() % 5;
      op.key = std::string(1, static_cast<char>('a' + rng() % 3));
      op.call_time = point - static_cast<int64_t>(rng() % 25);
      op.return_time = point + static_cast<int64_t>(rng() % 25);
      switch (rng() % 4) {
        case 0:
          op.kind = OpKind::kGet;
          if (model.count(op.key)) op.output_value = model[op.key];
          break;
        case 1:
          op.kind = OpKind::kPut;
          op.value = std::to_string(rng() % 100);
          model[op.key] = op.value;
          break;
        case 2:
          op.kind = OpKind::kAppend;
          op.value = std::to_string(rng() % 10);
          model[op.key] += op.value;
          break;
        case 3:
          op.kind = OpKind::kDelete;
          op.output_ok = model.erase(op.key) > 0;
          break;
      }
      h.push_back(op);
    }
    ASSERT_TRUE(Linearizable(h)) << "seed=" << seed;
    for (Operation& op : h) {
      if (op.kind == OpKind::kGet) {
        op.output_value = "never-written";
        EXPECT_FALSE(Linearizable(h)) << "seed=" << seed;
        break;
      }
    }
  }
}

}  // namespace
}  // namespace blizzard::lincheck
