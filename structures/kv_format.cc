#include "structures/kv_format.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack.
#include <xxhash.h>

#include <cstring>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::structures::kv_format {

uint64_t KeyHash(std::string_view key) {
  return XXH3_64bits_withSeed(key.data(), key.size(), kKeySeed);
}

uint64_t PairHash(std::string_view key, std::string_view value) {
  // The key length keeps (k="ab", v="c") and (k="a", v="bc") apart.
  uint8_t len[8];
  const uint64_t n = key.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  XXH3_state_t state;
  XXH3_INITSTATE(&state);
  ABSL_RAW_CHECK(XXH3_64bits_reset_withSeed(&state, kPairSeed) == XXH_OK, "xxh3 reset");
  XXH3_64bits_update(&state, len, sizeof(len));
  XXH3_64bits_update(&state, key.data(), key.size());
  XXH3_64bits_update(&state, value.data(), value.size());
  return XXH3_64bits_digest(&state);
}

uint64_t HeaderChecksum(const Header& header) {
  return XXH3_64bits_withSeed(&header, kHeaderChecksummedBytes, kHeaderSeed);
}

}  // namespace blizzard::structures::kv_format
