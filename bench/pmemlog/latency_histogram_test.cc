#include "bench/pmemlog/latency_histogram.h"

#include <cstdint>
#include <random>

#include "gtest/gtest.h"

namespace blizzard::bench {
namespace {

TEST(LatencyHistogramTest, BucketsTileTheValuesInOrder) {
  // Every value falls in a bucket whose upper bound is at least the value,
  // buckets never go backwards, and a bucket's upper bound is in it.
  size_t prev = 0;
  for (uint64_t v = 0; v < (1u << 20); ++v) {
    const size_t b = LatencyHistogram::BucketOf(v);
    ASSERT_GE(b, prev) << v;
    ASSERT_GE(LatencyHistogram::UpperBoundOf(b), v) << v;
    ASSERT_EQ(LatencyHistogram::BucketOf(LatencyHistogram::UpperBoundOf(b)), b) << v;
    prev = b;
  }
}

TEST(LatencyHistogramTest, RelativeErrorIsBounded) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t v = rng() >> (rng() % 40 + 16);
    const uint64_t upper = LatencyHistogram::UpperBoundOf(LatencyHistogram::BucketOf(v));
    ASSERT_LE(static_cast<double>(upper - v),
              static_cast<double>(v) / LatencyHistogram::kSubBuckets + 1)
        << v;
  }
}

TEST(LatencyHistogramTest, HugeValuesLandInTheTopBucket) {
  LatencyHistogram h;
  h.Record(UINT64_MAX);
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.max(), UINT64_MAX);
  EXPECT_EQ(h.Percentile(1.0),
            LatencyHistogram::UpperBoundOf(LatencyHistogram::BucketOf(UINT64_MAX)));
}

TEST(LatencyHistogramTest, Percentiles) {
  LatencyHistogram h;
  EXPECT_EQ(h.Percentile(0.5), 0u);
  for (uint64_t v = 1; v <= 1000; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_EQ(h.max(), 1000u);
  // Within one bucket (1/64) above the exact percentile, never below.
  EXPECT_GE(h.Percentile(0.5), 500u);
  EXPECT_LE(h.Percentile(0.5), 500u + 500u / 64 + 1);
  EXPECT_GE(h.Percentile(0.99), 990u);
  EXPECT_LE(h.Percentile(0.99), 990u + 990u / 64 + 1);
  EXPECT_EQ(h.Percentile(1.0), 1000u);  // Clamped to the maximum.
  h.Clear();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(0.99), 0u);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (int i = 0; i < 99; ++i) h.Record(10);
  h.Record(63);
  EXPECT_EQ(h.Percentile(0.5), 10u);
  EXPECT_EQ(h.Percentile(0.99), 10u);
  EXPECT_EQ(h.Percentile(1.0), 63u);
}

}  // namespace
}  // namespace blizzard::bench
