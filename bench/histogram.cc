#include "bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::bench {

size_t Histogram::BucketOf(uint64_t value) {
  if (value >= kValueLimit) return kBuckets - 1;
  if (value < kSubBuckets) return static_cast<size_t>(value);
  // The value's top bit selects the power-of-two range (its "magnitude");
  // the next kSubBucketBits bits select the bucket inside it.
  const int magnitude = std::bit_width(value) - 1 - kSubBucketBits;  // >= 0.
  const uint64_t sub = (value >> magnitude) - kSubBuckets;            // [0, kSubBuckets).
  return static_cast<size_t>(magnitude + 1) * kSubBuckets + static_cast<size_t>(sub);
}

uint64_t Histogram::LowestOf(size_t bucket) {
  ABSL_RAW_CHECK(bucket < kBuckets, "histogram bucket out of range");
  if (bucket < kSubBuckets) return bucket;
  const int magnitude = static_cast<int>(bucket / kSubBuckets) - 1;
  return (kSubBuckets + bucket % kSubBuckets) << magnitude;
}

uint64_t Histogram::HighestOf(size_t bucket) {
  if (bucket + 1 == kBuckets) return UINT64_MAX;  // The overflow bucket.
  return LowestOf(bucket + 1) - 1;
}

void Histogram::RecordN(uint64_t value, uint64_t n) {
  if (n == 0) return;
  counts_[BucketOf(value)] += n;
  count_ += n;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<long double>(value) * n;
}

void Histogram::Merge(const Histogram& other) {
  for (size_t b = 0; b < kBuckets; ++b) counts_[b] += other.counts_[b];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void Histogram::Reset() { *this = Histogram(); }

double Histogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / count_);
}

uint64_t Histogram::Percentile(double q) const {
  ABSL_RAW_CHECK(q >= 0.0 && q <= 1.0, "percentile outside [0, 1]");
  if (count_ == 0) return 0;
  // The rank of the wanted value, 1-based, at least 1.
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t b = 0; b < kBuckets; ++b) {
    seen += counts_[b];
    if (seen >= rank) return std::clamp(HighestOf(b), min_, max_);
  }
  ABSL_RAW_CHECK(false, "histogram counts do not add up to count()");
  return max_;
}

}  // namespace blizzard::bench
