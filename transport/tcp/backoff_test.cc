#include "transport/tcp/backoff.h"

#include "gtest/gtest.h"

namespace blizzard::transport::tcp {
namespace {

TEST(BackoffTest, DoublesUpToTheCapAndResets) {
  Backoff backoff(10, 100);
  EXPECT_EQ(backoff.Next(), 10);
  EXPECT_EQ(backoff.Next(), 20);
  EXPECT_EQ(backoff.Next(), 40);
  EXPECT_EQ(backoff.Next(), 80);
  EXPECT_EQ(backoff.Next(), 100);
  EXPECT_EQ(backoff.Next(), 100);
  backoff.Reset();
  EXPECT_EQ(backoff.Next(), 10);
}

TEST(BackoffTest, MinEqualToMaxIsConstant) {
  Backoff backoff(5, 5);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(backoff.Next(), 5);
}

TEST(BackoffTest, LargeCapsDoNotOverflow) {
  Backoff backoff(1, int64_t{1} << 40);
  int64_t last = 0;
  for (int i = 0; i < 100; ++i) last = backoff.Next();
  EXPECT_EQ(last, int64_t{1} << 40);
}

}  // namespace
}  // namespace blizzard::transport::tcp
