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

TEST(SnapshotTransferTest, WindowAcksGapsAndStalls) {
  const SnapshotMeta meta{10, 2, Membership{{1, 2}, {}}, 100};
  SnapshotTransfer t(meta, 60);
  EXPECT_TRUE(t.CanSend());
  t.Sent(30);
  t.Sent(30);
  EXPECT_FALSE(t.CanSend()) << "window of 60 bytes full";
  t.OnAck(30);
  EXPECT_TRUE(t.CanSend());
  EXPECT_EQ(t.next_offset(), 60u);
  t.Sent(30);
  // A gap at 30: go back there once; the same report again changes nothing.
  t.OnGap(30);
  EXPECT_EQ(t.next_offset(), 30u);
  t.Sent(30);
  t.OnGap(30);
  EXPECT_EQ(t.next_offset(), 60u);
  // An ack beyond what was resent moves next forward.
  t.OnAck(90);
  EXPECT_EQ(t.next_offset(), 90u);
  EXPECT_EQ(t.acked_offset(), 90u);
  t.Sent(10);  // The last chunk.
  EXPECT_FALSE(t.CanSend());
  t.OnAck(100);
  EXPECT_FALSE(t.CanSend()) << "everything sent and acknowledged";
  // Installation never confirmed: after the stall, start over from 0.
  EXPECT_FALSE(t.Tick(3));
  EXPECT_FALSE(t.Tick(3));
  EXPECT_TRUE(t.Tick(3));
  EXPECT_EQ(t.next_offset(), 0u);
  EXPECT_TRUE(t.CanSend());
  // A follower that lost its staged bytes reports offset 0.
  t.Sent(30);
  t.OnAck(30);
  t.OnGap(0);
  EXPECT_EQ(t.acked_offset(), 0u);
  EXPECT_EQ(t.next_offset(), 0u);
  // Reports beyond the snapshot are ignored.
  t.OnAck(1000);
  EXPECT_EQ(t.acked_offset(), 0u);
}

TEST(SnapshotTransferTest, EmptySnapshotIsOneEmptyChunk) {
  SnapshotTransfer t(SnapshotMeta{3, 1, Membership{{1}, {}}, 0}, 10);
  EXPECT_TRUE(t.CanSend());
  t.Sent(0);
  EXPECT_FALSE(t.CanSend());
}

TEST(ProgressTest, SnapshotStatePausesAppendsAndLeaseAcksKeepTheLatest) {
  Progress p(4);
  p.Reset(10);
  p.BecomeSnapshot(SnapshotMeta{8, 1, Membership{{1, 2}, {}}, 5}, 10);
  EXPECT_EQ(p.state(), ProgressState::kSnapshot);
  EXPECT_TRUE(p.IsPaused());
  EXPECT_FALSE(p.MaybeDecrTo(10, 3)) << "stale rejections ignored";
  EXPECT_TRUE(p.MaybeUpdate(8));
  p.BecomeReplicate();
  EXPECT_EQ(p.next(), 9u);
  EXPECT_FALSE(p.lease_ack_tick().has_value());
  p.OnLeaseAck(7);
  p.OnLeaseAck(5);
  EXPECT_EQ(*p.lease_ack_tick(), 7u);
  p.Reset(10);
  EXPECT_FALSE(p.lease_ack_tick().has_value());
  EXPECT_STREQ(ProgressStateName(ProgressState::kSnapshot), "snapshot");
}

}  // namespace
}  // namespace blizzard::consensus
