// Zipf-distributed ranks: rank k in [0, n) is drawn with probability
// proportional to 1 / (k + 1)^s. Rank 0 is the hottest key.
//
// Rejection-inversion sampling (Hörmann & Derflinger, "Rejection-inversion
// to generate variates from monotone discrete distributions", 1996): O(1)
// set-up and O(1) expected time per sample for any n and any s > 0
// (including s = 1), unlike YCSB's generator, whose set-up sums n terms
// and whose formula breaks at s = 1. All randomness comes from the caller's
// seeded Rng, so a seed replays the same ranks.
#ifndef BLIZZARD_BENCH_ZIPF_H_
#define BLIZZARD_BENCH_ZIPF_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "bench/rng.h"

namespace blizzard::bench {

class Zipf {
 public:
  static constexpr uint64_t kElementsMax = 1ull << 53;  // Exact in a double.
  static constexpr double kExponentMax = 100.0;

  // InvalidArgument unless 1 <= n <= kElementsMax and 0 < s <= kExponentMax.
  static absl::StatusOr<Zipf> Create(uint64_t n, double s);

  // A rank in [0, n).
  uint64_t Sample(Rng& rng) const;

  uint64_t n() const { return n_; }
  double s() const { return s_; }

 private:
  Zipf(uint64_t n, double s);
  double H(double x) const;
  double HIntegral(double x) const;
  double HIntegralInverse(double x) const;

  uint64_t n_;
  double s_;
  double h_integral_x1_;
  double h_integral_n_;
  double squeeze_;
};

}  // namespace blizzard::bench

#endif  // BLIZZARD_BENCH_ZIPF_H_
