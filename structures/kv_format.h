// On-media layout of the key-value pool (structures/FORMAT.md, "KV pool").
// Internal to //structures: the constants and structs live here, in one
// place, so the store, its verifier and the inspector agree on them.
#ifndef BLIZZARD_STRUCTURES_KV_FORMAT_H_
#define BLIZZARD_STRUCTURES_KV_FORMAT_H_

#include <libpmemobj.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace blizzard::structures::kv_format {

// The libpmemobj layout name. It carries no version on purpose: a pool of
// another layout version still opens, and the header below reports the
// version mismatch with a clear message.
inline constexpr char kLayoutName[] = "blizzard.kv";
inline constexpr uint64_t kMagic = 0x3154534b565a4c42ull;  // "BLZKVST1" (LE)
inline constexpr uint32_t kLayoutVersion = 2;

// Fixed seeds: hashes depend on content only, never on addresses or on a
// per-process random seed, so replicas compute the same values.
inline constexpr uint64_t kKeySeed = 0x426c697a7a6b6579ull;     // "Blizzkey"
inline constexpr uint64_t kPairSeed = 0x426c697a7a706172ull;    // "Blizzpar"
inline constexpr uint64_t kHeaderSeed = 0x426c697a7a686472ull;  // "Blizzhdr"

// pmemobj type numbers: let the verifier tell objects apart.
inline constexpr uint64_t kEntryType = 1;
inline constexpr uint64_t kSegmentType = 2;    // PMEMoid[SegmentBuckets(n)]: bucket heads.
inline constexpr uint64_t kDirectoryType = 3;  // PMEMoid[DirectoryEntries(n)]: segments.

inline constexpr uint64_t kBucketCountMin = 16;
inline constexpr uint64_t kBucketCountMax = 1ull << 32;
// Keys per bucket before the table doubles.
inline constexpr uint64_t kLoadFactorMax = 1;

// A table of n buckets is a directory of segments of SegmentBuckets(n)
// buckets each: a resize allocates (and zeroes) the new table one segment
// at a time as buckets move, never a whole array at once. 2048 buckets
// are 32 KiB: a few tens of microseconds to allocate, zero and flush.
inline constexpr uint64_t kSegmentBucketsMax = 2048;
inline constexpr uint64_t SegmentBuckets(uint64_t buckets) {
  return buckets < kSegmentBucketsMax ? buckets : kSegmentBucketsMax;
}
inline constexpr uint64_t DirectoryEntries(uint64_t buckets) {
  return buckets / SegmentBuckets(buckets);
}
// Directories and segments are allocated with at least this many bytes
// (more than they may need): all of a pool's table objects then come from
// one libpmemobj allocation class, which segments keep in use, and a resize
// never opens a fresh allocator run for a new size (~0.5 MiB of first
// touches, milliseconds of page faults, measured).
inline constexpr uint64_t kTableObjectBytesMin = kSegmentBucketsMax * sizeof(PMEMoid);

// Written once, at creation; immutable afterwards. The layout of these
// fields (up to and including `checksum`) is frozen across versions so that
// any build can read the version of any pool.
struct Header {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t reserved;  // Zero.
  uint64_t cluster_id;
  uint64_t node_id;
  uint64_t checksum;  // XXH3(seed kHeaderSeed) of the 32 bytes above.
};
static_assert(sizeof(Header) == 40);
inline constexpr size_t kHeaderChecksummedBytes = offsetof(Header, checksum);

// The pmemobj root object.
//
// The table doubles incrementally: while `old_directory` is set, a key
// whose old bucket (key_hash & (bucket_count/2 - 1)) is below
// `migrate_cursor` lives in the table of `directory`, every other key in
// the old table. Each batch moves a bounded number of old buckets (kMigrate*
// below) inside its transaction.
struct Root {
  Header header;
  // Changed together by every ApplyBatch transaction (one snapshot range,
  // which also covers `migrate_cursor` while a resize is in progress).
  uint64_t applied_index;
  uint64_t key_count;
  uint64_t state_hash;  // Sum mod 2^64 of every entry's pair_hash.
  // Next old bucket to move; 0 when no resize is in progress.
  uint64_t migrate_cursor;
  // Changed when a resize starts or ends.
  uint64_t bucket_count;  // A power of two in [kBucketCountMin, kBucketCountMax].
  PMEMoid directory;      // The table: type kDirectoryType.
  // Null unless a resize is in progress; then the old table of
  // bucket_count / 2 buckets.
  PMEMoid old_directory;
};
static_assert(sizeof(Root) == 112);
static_assert(offsetof(Root, applied_index) == 40 && offsetof(Root, migrate_cursor) == 64 &&
              offsetof(Root, bucket_count) == 72 && offsetof(Root, directory) == 80 &&
              offsetof(Root, old_directory) == 96);  // FORMAT.md
inline constexpr size_t kRootCountersOffset = offsetof(Root, applied_index);
inline constexpr size_t kRootCountersBytes = offsetof(Root, migrate_cursor) - kRootCountersOffset;
// The counters plus the cursor: what a batch during a resize changes.
inline constexpr size_t kRootCountersAndCursorBytes =
    offsetof(Root, bucket_count) - kRootCountersOffset;
// The resize state: changed when a resize starts or ends.
inline constexpr size_t kRootResizeOffset = offsetof(Root, migrate_cursor);
inline constexpr size_t kRootResizeBytes = sizeof(Root) - kRootResizeOffset;

// Incremental resize pacing. Every batch moves kMigrateBucketsPerBatch old
// buckets, plus kMigrateBucketsPerInsert per key it inserts; a batch that
// inserts many keys moves them in steps of kMigrateStepBuckets as it goes.
// Moving at least two old buckets per insert finishes a resize (half the
// new table's buckets) before the keys can reach the next resize's bound
// (the new bucket count). The numbers shape the pool's bytes (which batch
// moves which bucket), so replicas must agree on them: part of the layout.
inline constexpr uint64_t kMigrateBucketsPerBatch = 64;
inline constexpr uint64_t kMigrateBucketsPerInsert = 2;
inline constexpr uint64_t kMigrateStepBuckets = 64;

// One key/value pair, type kEntryType, followed by key then value bytes.
// Chained from its bucket; the allocation may be larger than the pair
// (APPEND preallocates), the slack is unused.
struct Entry {
  PMEMoid next;
  uint64_t key_hash;   // KeyHash(key): selects the bucket (low bits).
  uint64_t pair_hash;  // PairHash(key, value): the state-hash term and the
                       // entry's checksum.
  uint32_t key_bytes;
  uint32_t value_bytes;
};
static_assert(sizeof(Entry) == 40);

uint64_t KeyHash(std::string_view key);
// XXH3 over (key length as 8 bytes little-endian, key, value).
uint64_t PairHash(std::string_view key, std::string_view value);
uint64_t HeaderChecksum(const Header& header);

}  // namespace blizzard::structures::kv_format

#endif  // BLIZZARD_STRUCTURES_KV_FORMAT_H_
