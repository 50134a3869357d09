#include "consensus/read_only.h"

#include "gtest/gtest.h"

namespace blizzard::consensus {
namespace {

TEST(ReadOnlyTest, AcksAreDistinctAndAdvanceReleasesInOrder) {
  ReadOnly ro;
  EXPECT_EQ(ro.LastPendingContext(), 0u);
  ro.Add(5, 100, 1);
  ro.Add(5, 101, 1);
  ro.Add(6, 102, 1);
  EXPECT_EQ(ro.size(), 3u);
  EXPECT_TRUE(ro.Contains(101));
  EXPECT_EQ(ro.LastPendingContext(), 102u);
  EXPECT_EQ(ro.RecvAck(2, 101)->size(), 2u);
  EXPECT_EQ(ro.RecvAck(2, 101)->size(), 2u);  // Duplicates count once.
  EXPECT_EQ(ro.RecvAck(1, 101)->size(), 2u);  // The leader's own ack is there.
  EXPECT_EQ(*ro.RecvAck(3, 101), (std::vector<NodeId>{1, 2, 3}));
  EXPECT_EQ(ro.RecvAck(2, 999), nullptr);
  std::vector<ReadOnly::Request> done = ro.Advance(101);
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].context, 100u);
  EXPECT_EQ(done[1].context, 101u);
  EXPECT_EQ(ro.size(), 1u);
  EXPECT_TRUE(ro.Advance(55).empty());
  ro.Reset();
  EXPECT_EQ(ro.size(), 0u);
}

}  // namespace
}  // namespace blizzard::consensus
