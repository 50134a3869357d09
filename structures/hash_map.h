// A chained hash map from byte strings to byte strings on the arena, with
// incremental resize (the logic of the old kv_store.cc): the table is a
// directory of segments of <= 512 bucket heads, allocated lazily; when
// keys exceed buckets the table doubles and every later insert moves
// kMoveBucketsPerInsert old buckets, so no operation does more than
// O(its own size + a segment) of table work. Used for the keyspace,
// for sets (empty values) and for sorted sets' member -> score map.
// Layout: structures/FORMAT.md ("Hash map"). A handle caches the header:
// one handle per map at a time, inside a transaction for mutations.
#ifndef BLIZZARD_STRUCTURES_HASH_MAP_H_
#define BLIZZARD_STRUCTURES_HASH_MAP_H_

#include <cstdint>
#include <functional>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "structures/arena.h"

namespace blizzard::structures {

namespace hash_map_format {
struct Header {
  uint64_t count;
  uint64_t buckets;        // Of the table (the new one while resizing).
  uint64_t directory;      // Segment offsets (0 = all buckets empty).
  uint64_t old_directory;  // 0 unless resizing: the table of buckets / 2.
  uint64_t cursor;         // Old buckets below it have moved.
};
struct Entry {
  uint64_t next;
  uint64_t hash;
  uint32_t key_bytes;
  uint32_t value_bytes;
  // key bytes, value bytes
};
static_assert(sizeof(Header) == 40 && sizeof(Entry) == 24);
inline constexpr uint64_t kBucketsMin = 8;
inline constexpr uint64_t kBucketsMax = 1ull << 40;
inline constexpr uint64_t kSegmentBucketsMax = 512;
inline constexpr uint64_t kMoveBucketsPerInsert = 4;
inline constexpr uint64_t kHashSeed = 0x426c7a4d61704b79ull;
inline constexpr uint64_t SegmentBuckets(uint64_t n) {
  return n < kSegmentBucketsMax ? n : kSegmentBucketsMax;
}
}  // namespace hash_map_format

uint64_t HashKey(std::string_view key);

class HashMap {
 public:
  // A new empty map; its header offset, or 0 (transaction failed).
  static uint64_t Create(Arena& arena);
  HashMap(Arena& arena, uint64_t header);

  uint64_t header() const { return at_; }
  uint64_t size() const { return h_.count; }
  // The entry holding `key`, or 0.
  uint64_t Find(std::string_view key) const;
  std::string_view Key(uint64_t entry) const;
  std::string_view Value(uint64_t entry) const;

  // Inserts or replaces. Returns the entry (0: transaction failed);
  // `*inserted` tells whether the key is new.
  uint64_t Put(std::string_view key, std::string_view value, bool* inserted = nullptr);
  // The same with the value given in two parts (stored back to back), and
  // `before_replace(entry)` called on the key's current entry, if any,
  // before it is rewritten or replaced (it must not change this map): one
  // lookup where Find() + Put() take two, and no joined copy of the value.
  uint64_t Put(std::string_view key, std::string_view a, std::string_view b,
               absl::FunctionRef<void(uint64_t entry)> before_replace, bool* inserted = nullptr);
  // Appends to an existing key's value, preallocating like Redis's sds
  // (double below 1 MiB, then +1 MiB) so repeated appends write only the
  // suffix. Returns the entry, 0 if absent or failed.
  uint64_t Append(std::string_view key, std::string_view suffix);
  bool Erase(std::string_view key);
  // Frees every entry, segment, directory and the header.
  void Destroy();
  // Every entry, in table order (deterministic).
  void ForEach(const std::function<void(uint64_t entry)>& fn) const;

  // Checks everything (hashes, homes, counts, segments, duplicates) and
  // calls `own` for every block the map owns; DataLoss on damage or if
  // `own` fails.
  absl::Status Check(const std::function<absl::Status(uint64_t block)>& own) const;

  bool resizing() const { return h_.old_directory != 0; }
  uint64_t buckets() const { return h_.buckets; }

 private:
  struct Slot {
    uint64_t link;   // Where the pointer to `entry` is stored (0: no segment yet).
    uint64_t entry;  // 0: not found.
  };
  struct Home {
    uint64_t directory;
    uint64_t buckets;
    uint64_t bucket;
  };
  Home HomeOf(uint64_t hash) const;
  uint64_t SlotOf(uint64_t directory, uint64_t buckets, uint64_t bucket) const;
  uint64_t EnsureSlot(uint64_t directory, uint64_t buckets, uint64_t bucket);
  Slot Locate(std::string_view key, uint64_t hash) const;
  uint64_t NewEntry(std::string_view key, uint64_t hash, std::string_view a, std::string_view b,
                    uint64_t capacity);
  void Migrate(uint64_t old_buckets_max);
  void MoveBucket(uint64_t i);
  void Save() { arena_.Put(at_, h_); }

  Arena& arena_;
  uint64_t at_;
  hash_map_format::Header h_;
};

}  // namespace blizzard::structures

#endif  // BLIZZARD_STRUCTURES_HASH_MAP_H_
