// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast PRNG whose whole state is
// one uint64_t. Our own rather than <random>'s engines + distributions, whose
// output for a given seed may differ between standard libraries: a seed must
// replay the same run everywhere.
#ifndef BLIZZARD_TRANSPORT_SIM_SPLITMIX64_H_
#define BLIZZARD_TRANSPORT_SIM_SPLITMIX64_H_

#include <cstdint>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::transport {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, 1) with 53 bits of precision.
  double NextDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // Uniform in [lo, hi] (inclusive), by multiply-shift: the bias is below
  // 2^-64 * range, irrelevant for fault injection.
  uint64_t Uniform(uint64_t lo, uint64_t hi) {
    ABSL_RAW_CHECK(lo <= hi, "Uniform needs lo <= hi");
    const uint64_t range = hi - lo + 1;  // 0 means the full 2^64 range.
    if (range == 0) return Next();
    return lo + static_cast<uint64_t>(
                    (static_cast<unsigned __int128>(Next()) * range) >> 64);
  }

  // True with probability p (p <= 0: never, p >= 1: always).
  bool Chance(double p) { return NextDouble() < p; }

 private:
  uint64_t state_;
};

}  // namespace blizzard::transport

#endif  // BLIZZARD_TRANSPORT_SIM_SPLITMIX64_H_
