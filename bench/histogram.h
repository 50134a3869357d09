// An HDR-style log-linear histogram of latencies (any non-negative integer
// values; the load generator records nanoseconds).
//
// Like Gil Tene's HdrHistogram: values below 2^kSubBucketBits are counted
// exactly; above, each power-of-two range is split into 2^kSubBucketBits
// equal buckets, so every reported value is within 2^-kSubBucketBits (0.8%)
// of a recorded one, over the whole range, with a fixed 35 KiB of counters.
// Recording is a few instructions and never allocates; histograms of the
// same shape merge by adding counters (per-interval and total views).
// Debian ships HdrHistogram only for Java and Go, hence this small one.
#ifndef BLIZZARD_BENCH_HISTOGRAM_H_
#define BLIZZARD_BENCH_HISTOGRAM_H_

#include <array>
#include <cstddef>
#include <cstdint>

namespace blizzard::bench {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBucketBits;
  // Values of 2^kValueBits and more (73 minutes in ns) are counted in the
  // last bucket; max() still reports them exactly.
  static constexpr int kValueBits = 42;
  static constexpr uint64_t kValueLimit = uint64_t{1} << kValueBits;
  static constexpr size_t kBuckets = (kValueBits - kSubBucketBits + 1) * kSubBuckets;

  void Record(uint64_t value) { RecordN(value, 1); }
  void RecordN(uint64_t value, uint64_t n);
  // Adds every value recorded in `other`.
  void Merge(const Histogram& other);
  void Reset();

  uint64_t count() const { return count_; }
  // 0 when empty.
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const;

  // The value at quantile q in [0, 1]: the highest value equivalent (same
  // bucket) to the smallest recorded value v such that at least q of all
  // values are <= v, clamped to [min(), max()]. Percentile(1) == max().
  // 0 when empty.
  uint64_t Percentile(double q) const;

  // Bucket arithmetic, public for tests.
  static size_t BucketOf(uint64_t value);
  static uint64_t LowestOf(size_t bucket);   // Smallest value in the bucket.
  static uint64_t HighestOf(size_t bucket);  // Largest value in the bucket.

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  long double sum_ = 0;  // For the mean; exact enough for any run length.
};

}  // namespace blizzard::bench

#endif  // BLIZZARD_BENCH_HISTOGRAM_H_
