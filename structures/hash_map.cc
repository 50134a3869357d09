#include "structures/hash_map.h"

#include <algorithm>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "xxhash.h"

namespace blizzard::structures {
namespace {

using hash_map_format::Entry;
using hash_map_format::Header;
using hash_map_format::SegmentBuckets;

constexpr uint64_t kAppendPreallocBytesMax = 1u << 20;

absl::Status Damaged(const std::string& why) {
  return absl::DataLossError(absl::StrCat("hash map: ", why));
}

}  // namespace

uint64_t HashKey(std::string_view key) {
  return XXH3_64bits_withSeed(key.data(), key.size(), hash_map_format::kHashSeed);
}

uint64_t HashMap::Create(Arena& arena) {
  const uint64_t at = arena.Alloc(sizeof(Header));
  const uint64_t dir = arena.AllocZeroed(8);  // One segment slot.
  if (at == 0 || dir == 0) return 0;
  arena.Put(at, Header{0, hash_map_format::kBucketsMin, dir, 0, 0});
  return at;
}

HashMap::HashMap(Arena& arena, uint64_t header)
    : arena_(arena), at_(header), h_(arena.Load<Header>(header)) {}

std::string_view HashMap::Key(uint64_t entry) const {
  const Entry e = arena_.Load<Entry>(entry);
  return arena_.Bytes(entry + sizeof(Entry), e.key_bytes);
}

std::string_view HashMap::Value(uint64_t entry) const {
  const Entry e = arena_.Load<Entry>(entry);
  return arena_.Bytes(entry + sizeof(Entry) + e.key_bytes, e.value_bytes);
}

HashMap::Home HashMap::HomeOf(uint64_t hash) const {
  if (h_.old_directory != 0) {
    const uint64_t old_n = h_.buckets / 2;
    const uint64_t i = hash & (old_n - 1);
    if (i >= h_.cursor) return Home{h_.old_directory, old_n, i};
  }
  return Home{h_.directory, h_.buckets, hash & (h_.buckets - 1)};
}

uint64_t HashMap::SlotOf(uint64_t directory, uint64_t buckets, uint64_t bucket) const {
  const uint64_t sb = SegmentBuckets(buckets);
  const uint64_t segment = arena_.Load<uint64_t>(directory + 8 * (bucket / sb));
  return segment == 0 ? 0 : segment + 8 * (bucket % sb);
}

uint64_t HashMap::EnsureSlot(uint64_t directory, uint64_t buckets, uint64_t bucket) {
  const uint64_t slot = SlotOf(directory, buckets, bucket);
  if (slot != 0) return slot;
  const uint64_t sb = SegmentBuckets(buckets);
  const uint64_t segment = arena_.AllocZeroed(8 * sb);
  if (segment == 0) return 0;
  arena_.Put<uint64_t>(directory + 8 * (bucket / sb), segment);
  return segment + 8 * (bucket % sb);
}

HashMap::Slot HashMap::Locate(std::string_view key, uint64_t hash) const {
  const Home home = HomeOf(hash);
  uint64_t link = SlotOf(home.directory, home.buckets, home.bucket);
  if (link == 0) return Slot{0, 0};
  for (uint64_t e = arena_.Load<uint64_t>(link); e != 0;) {
    const Entry entry = arena_.Load<Entry>(e);
    if (entry.hash == hash && entry.key_bytes == key.size() &&
        arena_.Bytes(e + sizeof(Entry), entry.key_bytes) == key) {
      return Slot{link, e};
    }
    link = e;  // Entry::next is at offset 0.
    e = entry.next;
  }
  return Slot{link, 0};
}

uint64_t HashMap::Find(std::string_view key) const { return Locate(key, HashKey(key)).entry; }

uint64_t HashMap::NewEntry(std::string_view key, uint64_t hash, std::string_view a,
                           std::string_view b, uint64_t capacity) {
  const uint64_t value_bytes = a.size() + b.size();
  const uint64_t e = arena_.Alloc(sizeof(Entry) + key.size() + std::max(capacity, value_bytes));
  if (e == 0) return 0;
  arena_.Put(e, Entry{0, hash, static_cast<uint32_t>(key.size()),
                      static_cast<uint32_t>(value_bytes)});
  arena_.Write(e + sizeof(Entry), key.data(), key.size());
  arena_.Write(e + sizeof(Entry) + key.size(), a.data(), a.size());
  arena_.Write(e + sizeof(Entry) + key.size() + a.size(), b.data(), b.size());
  return e;
}

uint64_t HashMap::Put(std::string_view key, std::string_view value, bool* inserted) {
  return Put(key, value, {}, [](uint64_t) {}, inserted);
}

uint64_t HashMap::Put(std::string_view key, std::string_view a, std::string_view b,
                      absl::FunctionRef<void(uint64_t entry)> before_replace, bool* inserted) {
  const uint64_t hash = HashKey(key);
  Slot s = Locate(key, hash);
  if (inserted != nullptr) *inserted = s.entry == 0;
  if (s.entry != 0) {
    before_replace(s.entry);
    const Entry e = arena_.Load<Entry>(s.entry);
    // In place if it fits without wasting more than its own size + 256 B.
    const uint64_t value_bytes = a.size() + b.size();
    const uint64_t needed = sizeof(Entry) + e.key_bytes + value_bytes;
    const uint64_t usable = arena_.UsableBytes(s.entry);
    if (needed <= usable && usable <= 2 * needed + 256) {
      const uint64_t at = s.entry + sizeof(Entry) + e.key_bytes;
      arena_.Put<uint32_t>(s.entry + offsetof(Entry, value_bytes),
                           static_cast<uint32_t>(value_bytes));
      arena_.Write(at, a.data(), a.size());
      arena_.Write(at + a.size(), b.data(), b.size());
      return arena_.ok() ? s.entry : 0;
    }
    const uint64_t n = NewEntry(key, hash, a, b, 0);
    if (n == 0) return 0;
    arena_.Put<uint64_t>(n, e.next);
    arena_.Put<uint64_t>(s.link, n);
    arena_.Free(s.entry);
    return arena_.ok() ? n : 0;
  }
  // A new key: move some old buckets first, then grow if due.
  if (h_.old_directory != 0) Migrate(hash_map_format::kMoveBucketsPerInsert);
  if (h_.old_directory == 0 && h_.count + 1 > h_.buckets &&
      h_.buckets < hash_map_format::kBucketsMax) {
    const uint64_t n = 2 * h_.buckets;
    const uint64_t dir = arena_.AllocZeroed(8 * (n / SegmentBuckets(n)));
    if (dir == 0) return 0;
    h_.old_directory = h_.directory;
    h_.directory = dir;
    h_.buckets = n;
    h_.cursor = 0;
    Migrate(hash_map_format::kMoveBucketsPerInsert);
  }
  const Home home = HomeOf(hash);
  const uint64_t slot = EnsureSlot(home.directory, home.buckets, home.bucket);
  if (slot == 0) return 0;
  const uint64_t n = NewEntry(key, hash, a, b, 0);
  if (n == 0) return 0;
  arena_.Put<uint64_t>(n, arena_.Load<uint64_t>(slot));  // Push front.
  arena_.Put<uint64_t>(slot, n);
  h_.count++;
  Save();
  return arena_.ok() ? n : 0;
}

uint64_t HashMap::Append(std::string_view key, std::string_view suffix) {
  const uint64_t hash = HashKey(key);
  const Slot s = Locate(key, hash);
  if (s.entry == 0) return 0;
  const Entry e = arena_.Load<Entry>(s.entry);
  const uint64_t value_bytes = uint64_t{e.value_bytes} + suffix.size();
  if (sizeof(Entry) + e.key_bytes + value_bytes <= arena_.UsableBytes(s.entry)) {
    arena_.Write(s.entry + sizeof(Entry) + e.key_bytes + e.value_bytes, suffix.data(),
                 suffix.size());
    arena_.Put<uint32_t>(s.entry + offsetof(Entry, value_bytes),
                         static_cast<uint32_t>(value_bytes));
    return arena_.ok() ? s.entry : 0;
  }
  uint64_t capacity = value_bytes < kAppendPreallocBytesMax ? 2 * value_bytes
                                                            : value_bytes + kAppendPreallocBytesMax;
  capacity = std::min(capacity, arena_format::kAllocBytesMax - sizeof(Entry) - e.key_bytes);
  const std::string old(Value(s.entry));  // Copied: the entry is freed below.
  const uint64_t n = NewEntry(key, hash, old, suffix, capacity);
  if (n == 0) return 0;
  arena_.Put<uint64_t>(n, e.next);
  arena_.Put<uint64_t>(s.link, n);
  arena_.Free(s.entry);
  return arena_.ok() ? n : 0;
}

bool HashMap::Erase(std::string_view key) {
  const Slot s = Locate(key, HashKey(key));
  if (s.entry == 0) return false;
  arena_.Put<uint64_t>(s.link, arena_.Load<uint64_t>(s.entry));
  arena_.Free(s.entry);
  h_.count--;
  Save();
  return true;
}

void HashMap::Migrate(uint64_t old_buckets_max) {
  for (uint64_t k = 0; k < old_buckets_max && h_.old_directory != 0 && arena_.ok(); ++k) {
    MoveBucket(h_.cursor);
    const uint64_t old_n = h_.buckets / 2;
    const uint64_t sb = SegmentBuckets(old_n);
    h_.cursor++;
    if (h_.cursor % sb == 0) {  // Its old segment is empty now.
      const uint64_t slot_at = h_.old_directory + 8 * ((h_.cursor - 1) / sb);
      const uint64_t segment = arena_.Load<uint64_t>(slot_at);
      if (segment != 0) arena_.Free(segment);
      arena_.Put<uint64_t>(slot_at, 0);
    }
    if (h_.cursor == old_n) {
      arena_.Free(h_.old_directory);
      h_.old_directory = 0;
      h_.cursor = 0;
    }
  }
  Save();
}

// Splits old bucket i over new buckets i and i + old_n by one more hash
// bit, keeping the entries' order.
void HashMap::MoveBucket(uint64_t i) {
  const uint64_t old_n = h_.buckets / 2;
  const uint64_t old_slot = SlotOf(h_.old_directory, old_n, i);
  if (old_slot == 0) return;
  uint64_t e = arena_.Load<uint64_t>(old_slot);
  if (e == 0) return;
  uint64_t tail[2] = {0, 0};
  uint64_t slot[2] = {0, 0};
  while (e != 0 && arena_.ok()) {
    const Entry entry = arena_.Load<Entry>(e);
    const int half = (entry.hash & old_n) ? 1 : 0;
    if (tail[half] == 0) {
      slot[half] = EnsureSlot(h_.directory, h_.buckets, i + (half ? old_n : 0));
      if (slot[half] == 0) return;
      arena_.Put<uint64_t>(slot[half], e);
    } else if (arena_.Load<uint64_t>(tail[half]) != e) {
      arena_.Put<uint64_t>(tail[half], e);
    }
    tail[half] = e;
    e = entry.next;
  }
  for (uint64_t t : tail) {
    if (t != 0 && arena_.Load<uint64_t>(t) != 0) arena_.Put<uint64_t>(t, 0);
  }
  arena_.Put<uint64_t>(old_slot, 0);
}

void HashMap::ForEach(const std::function<void(uint64_t entry)>& fn) const {
  auto table = [&](uint64_t dir, uint64_t n, uint64_t from) {
    const uint64_t sb = SegmentBuckets(n);
    for (uint64_t s = 0; s < n / sb; ++s) {
      const uint64_t segment = arena_.Load<uint64_t>(dir + 8 * s);
      if (segment == 0) continue;
      for (uint64_t b = std::max(from, s * sb); b < (s + 1) * sb; ++b) {
        for (uint64_t e = arena_.Load<uint64_t>(segment + 8 * (b - s * sb)); e != 0;) {
          const uint64_t next = arena_.Load<uint64_t>(e);
          fn(e);
          e = next;
        }
      }
    }
  };
  if (h_.old_directory != 0) table(h_.old_directory, h_.buckets / 2, h_.cursor);
  table(h_.directory, h_.buckets, 0);
}

void HashMap::Destroy() {
  auto table = [&](uint64_t dir, uint64_t n) {
    const uint64_t sb = SegmentBuckets(n);
    for (uint64_t s = 0; s < n / sb && arena_.ok(); ++s) {
      const uint64_t segment = arena_.Load<uint64_t>(dir + 8 * s);
      if (segment == 0) continue;
      for (uint64_t b = 0; b < sb; ++b) {
        for (uint64_t e = arena_.Load<uint64_t>(segment + 8 * b); e != 0;) {
          const uint64_t next = arena_.Load<uint64_t>(e);
          arena_.Free(e);
          e = next;
        }
      }
      arena_.Free(segment);
    }
    arena_.Free(dir);
  };
  if (h_.old_directory != 0) table(h_.old_directory, h_.buckets / 2);
  table(h_.directory, h_.buckets);
  arena_.Free(at_);
}

absl::Status HashMap::Check(const std::function<absl::Status(uint64_t block)>& own) const {
  const uint64_t n = h_.buckets;
  if (n < hash_map_format::kBucketsMin || n > hash_map_format::kBucketsMax || (n & (n - 1)) != 0) {
    return Damaged(absl::StrFormat("bad bucket count %d", n));
  }
  if (h_.old_directory == 0 ? h_.cursor != 0
                            : (n < 2 * hash_map_format::kBucketsMin || h_.cursor >= n / 2)) {
    return Damaged(absl::StrFormat("cursor %d with %d buckets", h_.cursor, n));
  }
  if (auto s = own(at_); !s.ok()) return s;
  absl::flat_hash_set<std::string_view> keys;
  uint64_t count = 0;
  auto table = [&](uint64_t dir, uint64_t buckets, bool old) -> absl::Status {
    const uint64_t sb = SegmentBuckets(buckets);
    const uint64_t segments = buckets / sb;
    if (!arena_.Contains(dir, 8 * segments) || arena_.BlockUsable(dir) < 8 * segments) {
      return Damaged("directory outside the arena or too small");
    }
    if (auto s = own(dir); !s.ok()) return s;
    for (uint64_t sg = 0; sg < segments; ++sg) {
      const uint64_t segment = arena_.Load<uint64_t>(dir + 8 * sg);
      if (segment == 0) continue;
      if (old && (sg + 1) * sb <= h_.cursor) return Damaged("old segment not freed");
      if (!arena_.Contains(segment, 8 * sb)) return Damaged("segment outside the arena");
      if (auto s = own(segment); !s.ok()) return s;
      if (arena_.BlockUsable(segment) < 8 * sb) return Damaged("segment too small");
      for (uint64_t j = 0; j < sb; ++j) {
        const uint64_t b = sg * sb + j;
        uint64_t steps = 0;
        for (uint64_t e = arena_.Load<uint64_t>(segment + 8 * j); e != 0;) {
          if (old && b < h_.cursor) return Damaged("moved old bucket not empty");
          if (!arena_.Contains(e, sizeof(Entry))) return Damaged("entry outside the arena");
          if (auto s = own(e); !s.ok()) return s;  // Also catches cycles.
          const Entry entry = arena_.Load<Entry>(e);
          if (sizeof(Entry) + uint64_t{entry.key_bytes} + entry.value_bytes >
              arena_.BlockUsable(e)) {
            return Damaged(absl::StrFormat("entry %d larger than its block", e));
          }
          const std::string_view key = Key(e);
          if (HashKey(key) != entry.hash) return Damaged(absl::StrFormat("entry %d hash", e));
          const Home home = HomeOf(entry.hash);
          if (home.directory != dir || home.bucket != b) {
            return Damaged(absl::StrFormat("entry %d not in its home bucket", e));
          }
          if (!keys.insert(key).second) return Damaged("duplicate key");
          count++;
          if (++steps > h_.count) return Damaged("chain longer than the count");
          e = entry.next;
        }
      }
    }
    return absl::OkStatus();
  };
  if (h_.old_directory != 0) {
    if (auto s = table(h_.old_directory, n / 2, true); !s.ok()) return s;
  }
  if (auto s = table(h_.directory, n, false); !s.ok()) return s;
  if (count != h_.count) {
    return Damaged(absl::StrFormat("count %d, walk found %d", h_.count, count));
  }
  return absl::OkStatus();
}

}  // namespace blizzard::structures
