// A fixed-size log-linear latency histogram: recording is a few arithmetic
// operations and one increment, never an allocation, so it can sit inside a
// timed loop. Values below kSubBuckets are exact; above, each power of two
// is split into kSubBuckets buckets, so a reported percentile is within
// 1/kSubBuckets (1.6%) of a recorded value.
#ifndef BLIZZARD_BENCH_PMEMLOG_LATENCY_HISTOGRAM_H_
#define BLIZZARD_BENCH_PMEMLOG_LATENCY_HISTOGRAM_H_

#include <array>
#include <bit>
#include <cstdint>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 6;
  static constexpr uint64_t kSubBuckets = 1ull << kSubBucketBits;
  // Values of at least 2^kValueBits are counted in the top bucket.
  static constexpr int kValueBits = 48;

  void Record(uint64_t value) {
    ++counts_[BucketOf(value)];
    ++count_;
    if (value > max_) max_ = value;
  }

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }

  // The smallest bucket upper bound such that at least fraction `q` (in
  // (0, 1]) of the recorded values are at or below it, clamped to max();
  // 0 when empty.
  uint64_t Percentile(double q) const {
    ABSL_RAW_CHECK(q > 0 && q <= 1, "percentile outside (0, 1]");
    if (count_ == 0) return 0;
    const double wanted = q * static_cast<double>(count_);
    uint64_t seen = 0;
    for (size_t b = 0; b < counts_.size(); ++b) {
      seen += counts_[b];
      if (static_cast<double>(seen) >= wanted) {
        const uint64_t upper = UpperBoundOf(b);
        return upper < max_ ? upper : max_;
      }
    }
    return max_;
  }

  void Clear() {
    counts_.fill(0);
    count_ = 0;
    max_ = 0;
  }

  // Bucket arithmetic, public for the test.
  static size_t BucketOf(uint64_t value) {
    if (value >= (1ull << kValueBits)) value = (1ull << kValueBits) - 1;
    if (value < kSubBuckets) return static_cast<size_t>(value);
    const int top = std::bit_width(value) - 1;  // >= kSubBucketBits.
    const int shift = top - kSubBucketBits;
    const uint64_t sub = (value >> shift) - kSubBuckets;  // In [0, kSubBuckets).
    return static_cast<size_t>((shift + 1) * kSubBuckets + sub);
  }
  // The largest value that falls into bucket `b`.
  static uint64_t UpperBoundOf(size_t b) {
    if (b < kSubBuckets) return b;
    const int shift = static_cast<int>(b / kSubBuckets) - 1;
    const uint64_t sub = b % kSubBuckets;
    return ((kSubBuckets + sub + 1) << shift) - 1;
  }

 private:
  static constexpr size_t kBuckets = (kValueBits - kSubBucketBits + 1) * kSubBuckets;
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

}  // namespace blizzard::bench

#endif  // BLIZZARD_BENCH_PMEMLOG_LATENCY_HISTOGRAM_H_
