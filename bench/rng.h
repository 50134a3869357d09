// A small, fast, seeded pseudo-random generator for load generation.
// xoshiro256** (Blackman & Vigna) seeded through splitmix64: the same seed
// gives the same stream on every platform and library version, which the
// std:: distributions and absl::BitGen do not promise. Not for security.
#ifndef BLIZZARD_BENCH_RNG_H_
#define BLIZZARD_BENCH_RNG_H_

#include <cstdint>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::bench {

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t x = seed;
    for (uint64_t& word : s_) word = SplitMix64(x);
    // splitmix64 never yields four zero words from one seed, but the
    // generator would be stuck at zero forever if it did.
    ABSL_RAW_CHECK((s_[0] | s_[1] | s_[2] | s_[3]) != 0, "xoshiro state all zero");
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, n) without modulo bias (Lemire's multiply-shift with
  // rejection). n must be > 0.
  uint64_t Below(uint64_t n) {
    ABSL_RAW_CHECK(n > 0, "Rng::Below(0)");
    unsigned __int128 m = static_cast<unsigned __int128>(Next()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;  // 2^64 mod n.
      while (low < threshold) {
        m = static_cast<unsigned __int128>(Next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  // Uniform in [0, 1) with 53 random bits.
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // The seed of an independent stream `stream` derived from `seed` (one
  // stream per connection, so connections do not share a sequence).
  static uint64_t StreamSeed(uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull);
    return SplitMix64(x);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t SplitMix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  uint64_t s_[4];
};

}  // namespace blizzard::bench

#endif  // BLIZZARD_BENCH_RNG_H_
