// On-arena layout of the typed keyspace (structures/FORMAT.md,
// "Keyspace") and the hashes of its state hash. Internal to //structures.
#ifndef BLIZZARD_STRUCTURES_KEYSPACE_FORMAT_H_
#define BLIZZARD_STRUCTURES_KEYSPACE_FORMAT_H_

#include <cstdint>
#include <cstring>
#include <string_view>

#include "structures/kv_store.h"
#include "xxhash.h"

namespace blizzard::structures::keyspace_format {

inline constexpr uint64_t kMagic = 0x3153594b5a4c4221ull;  // "!BLZKYS1" (LE)

// At arena_format::kRootOffset.
struct Root {
  uint64_t magic;
  uint64_t applied_index;
  uint64_t state_hash;  // Sum mod 2^64 of every key's KeyTerm.
  uint64_t keys;        // The keyspace's hash map.
};
static_assert(sizeof(Root) == 32);

// A key's value in the keyspace map: one type byte (ValueType), then a
// string's bytes, or for a container this 24-byte record.
struct ContainerValue {
  uint8_t type;
  uint8_t pad[7];      // Zero.
  uint64_t container;  // Deque / HashMap / ZSet header.
  uint64_t digest;     // Content digest (lists: the raw polynomial).
};
static_assert(sizeof(ContainerValue) == 24);

// A sorted set: a member -> score (8 bytes) map and a B+tree of
// (score, member).
struct ZSet {
  uint64_t members;
  uint64_t tree;
};

inline constexpr uint64_t kKeySeed = 0x426c7a4b65795465ull;
inline constexpr uint64_t kTermSeed = 0x426c7a5465726d31ull;
inline constexpr uint64_t kValueSeed = 0x426c7a56616c7565ull;
inline constexpr uint64_t kMemberSeed = 0x426c7a4d656d6265ull;

// A key's term: mixes the key, its type and its content digest.
inline uint64_t KeyTerm(std::string_view key, ValueType type, uint64_t digest) {
  const uint64_t parts[3] = {XXH3_64bits_withSeed(key.data(), key.size(), kKeySeed),
                             static_cast<uint64_t>(type), digest};
  return XXH3_64bits_withSeed(parts, sizeof(parts), kTermSeed);
}

// Sets: sum of member hashes; sorted sets: sum over (member, score bits).
inline uint64_t MemberHash(std::string_view m) {
  return XXH3_64bits_withSeed(m.data(), m.size(), kMemberSeed);
}
inline uint64_t ScoredHash(std::string_view m, double score) {
  uint64_t bits = 0;
  std::memcpy(&bits, &score, 8);
  return XXH3_64bits_withSeed(m.data(), m.size(), kMemberSeed ^ bits);
}

// Lists: sum of h(e_i) * g^seq_i mod p (p = 2^61 - 1), where seq numbers
// the positions (Deque::first_seq for the front). Pushes and pops at
// either end update it in O(1); multiplying by g^-first_seq makes it a
// function of the list's content alone.
inline constexpr uint64_t kP = (1ull << 61) - 1;
inline constexpr uint64_t kG = 37;
inline uint64_t Reduce(unsigned __int128 x) {
  uint64_t r = static_cast<uint64_t>(x & kP) + static_cast<uint64_t>(x >> 61);
  r = (r & kP) + (r >> 61);
  return r >= kP ? r - kP : r;
}
inline uint64_t MulMod(uint64_t a, uint64_t b) {
  return Reduce(static_cast<unsigned __int128>(a) * b);
}
inline uint64_t AddMod(uint64_t a, uint64_t b) {
  const uint64_t s = a + b;
  return s >= kP ? s - kP : s;
}
inline uint64_t SubMod(uint64_t a, uint64_t b) { return a >= b ? a - b : a + kP - b; }
inline uint64_t PowG(int64_t e) {
  constexpr int64_t kOrder = static_cast<int64_t>(kP - 1);
  uint64_t n = static_cast<uint64_t>(((e % kOrder) + kOrder) % kOrder);
  uint64_t result = 1, base = kG;
  while (n > 0) {
    if (n & 1) result = MulMod(result, base);
    base = MulMod(base, base);
    n >>= 1;
  }
  return result;
}
inline uint64_t ElementHash(std::string_view v) {
  return XXH3_64bits_withSeed(v.data(), v.size(), kValueSeed) % kP;
}

}  // namespace blizzard::structures::keyspace_format

#endif  // BLIZZARD_STRUCTURES_KEYSPACE_FORMAT_H_
