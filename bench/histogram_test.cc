#include "bench/histogram.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "bench/rng.h"
#include "gtest/gtest.h"

namespace blizzard::bench {
namespace {

TEST(Histogram, Empty) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.Percentile(0.5), 0u);
  EXPECT_EQ(h.mean(), 0.0);
}

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  for (uint64_t v = 0; v < Histogram::kSubBuckets; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(0.5), Histogram::kSubBuckets / 2 - 1);
  EXPECT_EQ(h.Percentile(1.0), Histogram::kSubBuckets - 1);
  EXPECT_EQ(h.Percentile(0.0), 0u);
  EXPECT_EQ(h.min(), 0u);
}

TEST(Histogram, BucketsTileTheRange) {
  // Consecutive buckets are adjacent, every value maps into the bucket whose
  // bounds contain it, and a bucket is at most 1/kSubBuckets of its values.
  for (size_t b = 0; b + 1 < Histogram::kBuckets; ++b) {
    const uint64_t lo = Histogram::LowestOf(b);
    const uint64_t hi = Histogram::HighestOf(b);
    ASSERT_LE(lo, hi) << "bucket " << b;
    ASSERT_EQ(hi + 1, Histogram::LowestOf(b + 1)) << "bucket " << b;
    ASSERT_EQ(Histogram::BucketOf(lo), b);
    ASSERT_EQ(Histogram::BucketOf(hi), b);
    ASSERT_LE(static_cast<double>(hi - lo), static_cast<double>(lo) / Histogram::kSubBuckets)
        << "bucket " << b;
  }
  EXPECT_EQ(Histogram::BucketOf(Histogram::kValueLimit), Histogram::kBuckets - 1);
  EXPECT_EQ(Histogram::BucketOf(UINT64_MAX), Histogram::kBuckets - 1);
}

TEST(Histogram, PercentilesWithinPrecisionOfExact) {
  // Log-uniform values from 1 us to 1 s; compare against sorting.
  const uint64_t seed = 3;
  Rng rng(seed);
  Histogram h;
  std::vector<uint64_t> values;
  for (int i = 0; i < 200000; ++i) {
    const double exponent = 3.0 + 6.0 * rng.Unit();
    const uint64_t v = static_cast<uint64_t>(std::pow(10.0, exponent));
    values.push_back(v);
    h.Record(v);
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.01, 0.5, 0.9, 0.99, 0.999, 0.9999}) {
    const size_t rank = static_cast<size_t>(std::ceil(q * values.size()));
    const uint64_t exact = values[rank - 1];
    const uint64_t got = h.Percentile(q);
    EXPECT_GE(got, exact) << "q=" << q << " seed=" << seed;
    EXPECT_LE(static_cast<double>(got - exact),
              static_cast<double>(exact) / Histogram::kSubBuckets + 1)
        << "q=" << q << " seed=" << seed;
  }
  EXPECT_EQ(h.Percentile(1.0), values.back());
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.min(), values.front());
}

TEST(Histogram, MeanIsExact) {
  Histogram h;
  h.Record(1000);
  h.Record(3000);
  h.RecordN(2000, 2);
  EXPECT_DOUBLE_EQ(h.mean(), 2000.0);
  EXPECT_EQ(h.count(), 4u);
}

TEST(Histogram, HugeValuesClampButMaxIsExact) {
  Histogram h;
  h.Record(UINT64_MAX / 2);
  h.Record(5);
  EXPECT_EQ(h.max(), UINT64_MAX / 2);
  EXPECT_EQ(h.Percentile(1.0), UINT64_MAX / 2);
  EXPECT_EQ(h.Percentile(0.5), 5u);
}

TEST(Histogram, MergeEqualsRecordingBoth) {
  Histogram a, b, both;
  Rng rng(5);
  for (int i = 0; i < 10000; ++i) {
    const uint64_t v = rng.Below(10'000'000);
    ((i % 3 == 0) ? a : b).Record(v);
    both.Record(v);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), both.count());
  EXPECT_EQ(a.min(), both.min());
  EXPECT_EQ(a.max(), both.max());
  for (double q : {0.1, 0.5, 0.99, 0.999}) EXPECT_EQ(a.Percentile(q), both.Percentile(q));
  a.Reset();
  EXPECT_EQ(a.count(), 0u);
  EXPECT_EQ(a.Percentile(0.99), 0u);
}

}  // namespace
}  // namespace blizzard::bench
