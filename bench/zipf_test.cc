#include "bench/zipf.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace blizzard::bench {
namespace {

// Frequencies of each rank over many samples match 1/(k+1)^s normalized,
// within 5 standard deviations (the seed is fixed, so this is deterministic;
// the bound says the check is meaningful, not lucky).
void ExpectMatchesZipf(uint64_t n, double s, uint64_t seed) {
  SCOPED_TRACE(testing::Message() << "n=" << n << " s=" << s << " seed=" << seed);
  absl::StatusOr<Zipf> zipf = Zipf::Create(n, s);
  ASSERT_TRUE(zipf.ok()) << zipf.status();
  Rng rng(seed);
  constexpr int kSamples = 400000;
  std::vector<uint64_t> counts(n, 0);
  for (int i = 0; i < kSamples; ++i) {
    const uint64_t k = zipf->Sample(rng);
    ASSERT_LT(k, n);
    ++counts[k];
  }
  double norm = 0;
  for (uint64_t k = 1; k <= n; ++k) norm += std::pow(static_cast<double>(k), -s);
  for (uint64_t k = 0; k < n; ++k) {
    const double p = std::pow(static_cast<double>(k + 1), -s) / norm;
    const double expected = p * kSamples;
    const double sigma = std::sqrt(kSamples * p * (1 - p));
    EXPECT_NEAR(static_cast<double>(counts[k]), expected, 5 * sigma + 1) << "rank " << k;
  }
}

TEST(Zipf, MatchesDistribution) {
  ExpectMatchesZipf(50, 0.99, 1);
  ExpectMatchesZipf(50, 1.0, 2);  // The exponent where YCSB's formula breaks.
  ExpectMatchesZipf(20, 0.5, 3);
  ExpectMatchesZipf(20, 2.0, 4);
  ExpectMatchesZipf(2, 1.2, 5);
}

TEST(Zipf, HotKeysOfALargeSpace) {
  // 10^9 keys, s = 0.99: rank 0 alone is about 4.6% of draws (1/H(n, s)).
  absl::StatusOr<Zipf> zipf = Zipf::Create(1'000'000'000, 0.99);
  ASSERT_TRUE(zipf.ok());
  Rng rng(11);
  int rank0 = 0;
  uint64_t largest = 0;
  for (int i = 0; i < 100000; ++i) {
    const uint64_t k = zipf->Sample(rng);
    rank0 += k == 0;
    largest = std::max(largest, k);
  }
  EXPECT_GT(rank0, 3500);
  EXPECT_LT(rank0, 5500);
  EXPECT_GT(largest, 100'000'000u);  // The tail is reached.
}

TEST(Zipf, SingleElement) {
  absl::StatusOr<Zipf> zipf = Zipf::Create(1, 0.99);
  ASSERT_TRUE(zipf.ok());
  Rng rng(1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(zipf->Sample(rng), 0u);
}

TEST(Zipf, DeterministicForASeed) {
  absl::StatusOr<Zipf> zipf = Zipf::Create(1000, 0.99);
  ASSERT_TRUE(zipf.ok());
  Rng a(77), b(77);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(zipf->Sample(a), zipf->Sample(b));
}

TEST(Zipf, RejectsBadParameters) {
  EXPECT_FALSE(Zipf::Create(0, 1.0).ok());
  EXPECT_FALSE(Zipf::Create(10, 0.0).ok());
  EXPECT_FALSE(Zipf::Create(10, -1.0).ok());
  EXPECT_FALSE(Zipf::Create(10, std::nan("")).ok());
  EXPECT_FALSE(Zipf::Create(10, 1000.0).ok());
  EXPECT_FALSE(Zipf::Create(Zipf::kElementsMax + 1, 1.0).ok());
  EXPECT_TRUE(Zipf::Create(Zipf::kElementsMax, 1.0).ok());
}

}  // namespace
}  // namespace blizzard::bench
