// A tiny deterministic pseudo-random generator (SplitMix64) for Raft's
// randomized election timeouts. Internal to //consensus.
//
// Why not <random> or absl::BitGen: the sequence must be identical on every
// platform and library version, because a simulation seed has to replay the
// same run; std distributions are implementation-defined and absl's bit
// generators are deliberately randomized per process.
#ifndef BLIZZARD_CONSENSUS_PRNG_H_
#define BLIZZARD_CONSENSUS_PRNG_H_

#include <cstdint>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::consensus {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n). The modulo bias is below 2^-40 for the small n used
  // here (tick counts), which does not matter for timeouts.
  uint64_t Uniform(uint64_t n) {
    ABSL_RAW_CHECK(n > 0, "Uniform(0)");
    return Next() % n;
  }

 private:
  uint64_t state_;
};

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_PRNG_H_
