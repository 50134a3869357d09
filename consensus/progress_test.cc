#include "consensus/progress.h"

#include "gtest/gtest.h"

namespace blizzard::consensus {
namespace {

TEST(InflightsTest, RingAddFreeAndWrap) {
  Inflights in(3);
  for (Index last : {5, 7, 9}) in.Add(last);
  EXPECT_TRUE(in.Full());
  in.FreeLE(6);
  EXPECT_EQ(in.Count(), 2u);
  in.Add(11);  // Wraps around the ring.
  EXPECT_TRUE(in.Full());
  in.FreeLE(9);
  EXPECT_EQ(in.Count(), 1u);
  in.FreeFirstOne();
  EXPECT_EQ(in.Count(), 0u);
  in.FreeFirstOne();  // Harmless when empty.
  in.Add(12);
  in.Reset();
  EXPECT_EQ(in.Count(), 0u);
}

TEST(ProgressTest, ProbeSendsOneAtATime) {
  Progress p(4);
  p.Reset(10);
  EXPECT_EQ(p.next(), 11u);
  EXPECT_FALSE(p.IsPaused());
  p.SentAppend(12, true);
  EXPECT_TRUE(p.IsPaused());
  EXPECT_EQ(p.next(), 11u) << "probe does not advance next optimistically";
  p.OnHeartbeatResponse();
  EXPECT_FALSE(p.IsPaused());
}

TEST(ProgressTest, ReplicateAdvancesOptimisticallyUntilWindowFull) {
  Progress p(2);
  p.Reset(10);
  ASSERT_TRUE(p.MaybeUpdate(10));
  p.BecomeReplicate();
  EXPECT_EQ(p.next(), 11u);
  p.SentAppend(12, true);
  EXPECT_EQ(p.next(), 13u);
  p.SentAppend(12, false);  // Empty append: no slot used.
  EXPECT_FALSE(p.IsPaused());
  p.SentAppend(14, true);
  EXPECT_TRUE(p.IsPaused());
  ASSERT_TRUE(p.MaybeUpdate(12));
  p.FreeInflightsUpTo(12);
  EXPECT_FALSE(p.IsPaused());
  EXPECT_FALSE(p.MaybeUpdate(11)) << "old news";
  // A full window gets one slot back on a heartbeat answer.
  p.SentAppend(15, true);
  ASSERT_TRUE(p.IsPaused());
  p.OnHeartbeatResponse();
  EXPECT_FALSE(p.IsPaused());
}

TEST(ProgressTest, MaybeDecrToIgnoresStaleRejections) {
  Progress p(4);
  p.Reset(10);
  // Probe: only the answer to the outstanding append (at next - 1) counts.
  EXPECT_FALSE(p.MaybeDecrTo(5, 3));
  p.SentAppend(11, true);
  EXPECT_TRUE(p.MaybeDecrTo(10, 3));
  EXPECT_EQ(p.next(), 4u);
  EXPECT_FALSE(p.IsPaused());
  // Never below match + 1.
  ASSERT_TRUE(p.MaybeUpdate(2));
  p.SentAppend(4, true);
  EXPECT_TRUE(p.MaybeDecrTo(3, 0));
  EXPECT_EQ(p.next(), 3u);
  // Replicate: rejections at or below match are stale.
  p.BecomeReplicate();
  EXPECT_FALSE(p.MaybeDecrTo(2, 0));
  p.SentAppend(8, true);
  EXPECT_TRUE(p.MaybeDecrTo(5, 4));
  EXPECT_EQ(p.next(), 3u);
}

TEST(ProgressTest, SelfIsReplicatingFromItsLastIndex) {
  Progress p(1);
  p.ResetAsSelf(7);
  EXPECT_EQ(p.match(), 7u);
  EXPECT_EQ(p.next(), 8u);
  EXPECT_EQ(p.state(), ProgressState::kReplicate);
  EXPECT_TRUE(p.recent_active());
}

}  // namespace
}  // namespace blizzard::consensus
