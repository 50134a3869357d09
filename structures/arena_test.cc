#include "structures/arena.h"

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "gtest/gtest.h"
#include "structures/arena_testing.h"
#include "structures/pmem_arena.h"
#include "structures/sim_memory.h"
#include "structures/test_util.h"
#include "structures/write_set.h"

namespace blizzard::structures {
namespace {

constexpr uint64_t kSimBytes = 256 << 10;

std::unique_ptr<Arena> Fresh(SimMemory& mem) {
  EXPECT_TRUE(Arena::Format(&mem).ok());
  auto a = Arena::Attach(&mem);
  EXPECT_TRUE(a.ok()) << a.status();
  return std::move(*a);
}

TEST(ArenaTest, AllocFreeReusesLifoAndChecksHeap) {
  SimMemory mem(kSimBytes);
  auto a = Fresh(mem);
  ASSERT_TRUE(a->Begin().ok());
  const uint64_t p = a->Alloc(10);
  const uint64_t q = a->Alloc(24);
  const uint64_t r = a->Alloc(25);
  ASSERT_NE(p, 0u);
  EXPECT_EQ(a->UsableBytes(p), 24u);  // 32-byte block.
  EXPECT_EQ(a->UsableBytes(q), 24u);
  EXPECT_EQ(a->UsableBytes(r), 40u);  // 48-byte block.
  EXPECT_EQ(q, p + 32);
  a->Free(p);
  a->Free(q);
  EXPECT_EQ(a->Alloc(1), q);  // LIFO.
  EXPECT_EQ(a->Alloc(1), p);
  a->Free(r);
  ASSERT_TRUE(a->Commit().ok());
  HeapShape shape;
  std::set<uint64_t> used;
  ASSERT_TRUE(a->CheckHeap([&](uint64_t b) { used.insert(b); }, &shape).ok());
  EXPECT_EQ(used, (std::set<uint64_t>{p, q}));
  EXPECT_EQ(shape.blocks_free, 1u);
  EXPECT_EQ(shape.heap_bytes, 32u + 32u + 48u);
}

TEST(ArenaTest, FullArenaFailsTheTransactionAndAbortRestores) {
  SimMemory mem(kSimBytes);
  auto a = Fresh(mem);
  const std::vector<uint8_t> before = mem.bytes();
  ASSERT_TRUE(a->Begin().ok());
  uint64_t n = 0;
  while (a->Alloc(1000) != 0) ++n;
  EXPECT_GT(n, 100u);
  EXPECT_EQ(a->status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(a->Alloc(1), 0u);  // Sticky.
  EXPECT_EQ(a->Commit().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(mem.bytes(), before);
  ASSERT_TRUE(a->Begin().ok());
  EXPECT_EQ(a->Alloc(arena_format::kAllocBytesMax + 1), 0u);
  EXPECT_EQ(a->Commit().code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(a->CheckHeap(nullptr, nullptr).ok());
}

// One allocation per transaction (the way the keyspace uses the arena);
// its payload offset, or 0 after aborting a transaction that found no room.
uint64_t AllocOne(Arena& a, uint64_t bytes) {
  EXPECT_TRUE(a.Begin().ok());
  const uint64_t p = a.Alloc(bytes);
  if (p == 0) {
    EXPECT_TRUE(a.out_of_memory()) << a.status();
    a.Abort();
    return 0;
  }
  EXPECT_TRUE(a.Commit().ok());
  return p;
}

// Carves the rest of the heap into blocks that stay in use.
void FillUncarved(Arena& a) {
  for (uint64_t bytes = 4096; bytes > 0; bytes /= 2) {
    while (AllocOne(a, bytes) != 0) {
    }
  }
  ASSERT_LT(a.CapacityBytes() + arena_format::kHeapOffset - a.header().bump, 32u);
}

// Space freed by large blocks serves small allocations once the heap is
// all carved: a free block of a larger class is split, and the rest of it
// goes back on the free lists as blocks of the largest classes that fit.
TEST(ArenaTest, FreedLargeBlocksAreSplitForSmallAllocations) {
  SimMemory mem(kSimBytes);
  auto a = Fresh(mem);
  std::vector<uint64_t> big;
  for (uint64_t p; (p = AllocOne(*a, 4000)) != 0;) big.push_back(p);
  ASSERT_GT(big.size(), 50u);
  FillUncarved(*a);
  const uint64_t carved = a->header().bump;
  ASSERT_EQ(a->UsableBytes(big[0]), 4096u - 8);  // 4 KiB blocks.
  ASSERT_TRUE(a->Begin().ok());
  for (uint64_t p : big) a->Free(p);
  ASSERT_TRUE(a->Commit().ok());
  const uint64_t freed = big.size() * 4096;
  ASSERT_EQ(a->UsedBytes(), 0u + (carved - arena_format::kHeapOffset - freed));

  // 100-byte values take 128-byte blocks: 32 of them from each 4 KiB block.
  std::set<uint64_t> small;
  for (uint64_t p; (p = AllocOne(*a, 100)) != 0;) {
    ASSERT_TRUE(small.insert(p).second);
    ASSERT_EQ(a->UsableBytes(p), 120u);
  }
  EXPECT_EQ(a->header().bump, carved);       // Nothing new was carved...
  EXPECT_EQ(small.size(), big.size() * 32);  // ...and every freed byte served.
  HeapShape shape;
  std::set<uint64_t> used;
  ASSERT_TRUE(a->CheckHeap([&](uint64_t b) { used.insert(b); }, &shape).ok());
  EXPECT_TRUE(std::includes(used.begin(), used.end(), small.begin(), small.end()));
  EXPECT_EQ(shape.bytes_free, 0u);
  EXPECT_EQ(a->UsedBytes(), shape.bytes_used);

  // A 48-byte block asked for a 32-byte one is handed out whole: the 16
  // bytes left could not be a block.
  SimMemory mem2(kSimBytes);
  auto b = Fresh(mem2);
  std::vector<uint64_t> blocks;
  for (uint64_t p; (p = AllocOne(*b, 40)) != 0;) blocks.push_back(p);  // 48-byte blocks.
  FillUncarved(*b);
  ASSERT_TRUE(b->Begin().ok());
  b->Free(blocks[7]);
  ASSERT_TRUE(b->Commit().ok());
  const uint64_t whole = AllocOne(*b, 1);
  EXPECT_EQ(whole, blocks[7]);
  EXPECT_EQ(b->UsableBytes(whole), 40u);
  EXPECT_EQ(AllocOne(*b, 1), 0u);
  ASSERT_TRUE(b->CheckHeap(nullptr, nullptr).ok());
}

TEST(ArenaTest, SmallWritesSnapshotEachLineOncePerTransaction) {
  SimMemory mem(kSimBytes);
  auto a = Fresh(mem);
  ASSERT_TRUE(a->Begin().ok());
  const uint64_t p = a->Alloc(100);  // A 128-byte block: one snapshot for all of it.
  ASSERT_NE(p, 0u);
  const uint64_t after_alloc = mem.undo_entries();
  EXPECT_GE(after_alloc, 1u);
  for (uint64_t i = 0; i < 10; ++i) a->Put<uint64_t>(p + 8 * (i % 4), i);
  a->Write(p + 40, "0123456789", 10);
  EXPECT_EQ(mem.undo_entries(), after_alloc);  // All inside the block's lines.
  // A line not held yet: one more snapshot, then none for repeats.
  const uint64_t far = p + 4096;
  a->Put<uint64_t>(far, 1);
  a->Put<uint64_t>(far, 2);
  EXPECT_EQ(mem.undo_entries(), after_alloc + 1);
  // Over kSnapshotLinesBytesMax: exact and not remembered, so twice is two.
  const std::string big(arena_format::kSnapshotLinesBytesMax + 1, 'b');
  a->Write(p + 8192, big.data(), big.size());
  a->Write(p + 8192, big.data(), big.size());
  EXPECT_EQ(mem.undo_entries(), after_alloc + 3);
  // Abort restores every byte, the ones written many times included.
  const std::vector<uint8_t> before = mem.RecoveredImage();
  a->Abort();
  EXPECT_EQ(mem.bytes(), before);
  // A new transaction snapshots again.
  ASSERT_TRUE(a->Begin().ok());
  a->Put<uint64_t>(far, 3);
  EXPECT_EQ(mem.undo_entries(), 1u);
  ASSERT_TRUE(a->Commit().ok());
}

TEST(SimMemoryDeathTest, StoreOutsideSnapshotsDies) {
  SimMemory mem(4096);
  ASSERT_TRUE(mem.Begin().ok());
  ASSERT_TRUE(mem.Snapshot(0, 64).ok());
  ASSERT_TRUE(mem.Snapshot(64, 64).ok());
  const char x[100] = {};
  mem.Store(10, x, 100);  // Spans two adjacent snapshots: covered.
  EXPECT_DEATH(mem.Store(100, x, 40), "not snapshotted");
  EXPECT_DEATH(mem.Store(1000, x, 1), "not snapshotted");
}

TEST(ArenaTest, WriteSetMergesRangesWithFirstPreImages) {
  SimMemory mem(kSimBytes);
  auto a = Fresh(mem);
  const uint64_t base = arena_format::kRootOffset;
  ASSERT_TRUE(a->Begin().ok());
  a->Write(base, "abcd", 4);
  ASSERT_TRUE(a->Commit().ok());
  ASSERT_TRUE(a->Begin().ok());
  a->Write(base + 2, "XY", 2);      // [2,4)
  a->Write(base + 4, "ZZ", 2);      // adjacent: merged [2,6)
  a->Write(base + 1, "q", 1);       // adjacent on the left: [1,6)
  a->Write(base + 3, "W", 1);       // inside, newer
  a->Write(base + 20, "tail", 4);   // separate
  WriteSet ws;
  ASSERT_TRUE(a->Commit(&ws).ok());
  ASSERT_EQ(ws.ranges.size(), 2u);
  EXPECT_EQ(ws.ranges[0].offset, base + 1);
  EXPECT_EQ(ws.ranges[0].post, "qXWZZ");
  EXPECT_EQ(ws.ranges[0].pre, std::string("bcd\0\0", 5));
  EXPECT_EQ(ws.ranges[1].post, "tail");
  EXPECT_EQ(ws.ranges[1].pre, std::string(4, '\0'));
  EXPECT_EQ(a->stats().bytes_written, 4u + 9u);
}

TEST(WriteSetTest, GoldenEncodingAndRejections) {
  WriteSet ws;
  ws.arena_bytes = 1000;
  ws.ranges.push_back({5, "ab", ""});
  ws.ranges.push_back({8, "c", ""});
  const std::string enc = EncodeWriteSet(ws);
  EXPECT_EQ(enc, std::string("\x01\xe8\x07\x02\x05\x02" "ab" "\x01\x01" "c", 11));
  auto span = [](const std::string& s) {
    return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  auto back = DecodeWriteSet(span(enc), 1000);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, ws);
  EXPECT_FALSE(DecodeWriteSet(span(enc), 999).ok());  // Another arena size.
  for (size_t n = 0; n < enc.size(); ++n) {
    EXPECT_FALSE(DecodeWriteSet(span(enc.substr(0, n)), 1000).ok()) << n;
  }
  EXPECT_FALSE(DecodeWriteSet(span(enc + "x"), 1000).ok());
  std::string adjacent = enc;
  adjacent[9] = 0;  // gap 0: adjacent to the previous range.
  EXPECT_FALSE(DecodeWriteSet(span(adjacent), 1000).ok());
  WriteSet far;
  far.arena_bytes = 10;
  far.ranges.push_back({8, "ab", ""});
  const std::string f = EncodeWriteSet(far);
  std::string beyond = f;
  beyond[3] = 9;  // offset 9 + 2 bytes > 10
  EXPECT_FALSE(DecodeWriteSet(span(beyond), 10).ok());
  EXPECT_TRUE(DecodeWriteSet(span(f), 10).ok());
  std::string empty_range = std::string("\x01\x0a\x01\x00\x00", 5);
  EXPECT_FALSE(DecodeWriteSet(span(empty_range), 10).ok());
  // Random bytes and bit flips never crash; accepted flips re-encode exactly.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string b = enc;
    b[rng() % b.size()] ^= static_cast<char>(1u << (rng() % 8));
    auto d = DecodeWriteSet(span(b), 1000);
    if (d.ok()) {
      EXPECT_EQ(EncodeWriteSet(*d), b);
    }
    std::string r(rng() % 24, '\0');
    for (char& c : r) c = static_cast<char>(rng());
    (void)DecodeWriteSet(span(r), rng() % 2 ? 1000 : rng());
  }
}

// A random transaction: allocations, frees and writes into live blocks.
void RandomTx(std::mt19937_64& rng, Arena& a, std::vector<uint64_t>& live) {
  const int steps = 1 + static_cast<int>(rng() % 12);
  for (int i = 0; i < steps; ++i) {
    const int what = static_cast<int>(rng() % 3);
    if (what == 0 || live.empty()) {
      const uint64_t p = a.Alloc(1 + rng() % 300);
      if (p == 0) return;
      live.push_back(p);
    } else if (what == 1) {
      const size_t k = rng() % live.size();
      a.Free(live[k]);
      live.erase(live.begin() + static_cast<long>(k));
    } else {
      const uint64_t p = live[rng() % live.size()];
      std::string bytes(1 + rng() % a.UsableBytes(p), '\0');
      for (char& c : bytes) c = static_cast<char>(rng());
      a.Write(p, bytes.data(), bytes.size());
    }
  }
}

// Logical mode counts the bytes and ranges a transaction wrote from the
// line table's masks instead of merging the records; physical mode builds
// the write set. Twin arenas given the same random transactions (small,
// overlapping, adjacent and large writes, savepoint rollbacks, aborts)
// count exactly what the write sets hold.
TEST(ArenaTest, CountsFromLineMasksEqualTheWriteSets) {
  std::mt19937_64 rng(31);
  SimMemory counted_mem(kSimBytes), built_mem(kSimBytes);
  auto counted = Fresh(counted_mem);
  auto built = Fresh(built_mem);
  // Data blocks for the byte-level writes (the allocator's own writes come
  // from RandomTx).
  std::vector<uint64_t> data;
  for (Arena* a : {counted.get(), built.get()}) {
    data.clear();
    ASSERT_TRUE(a->Begin().ok());
    for (int i = 0; i < 8; ++i) data.push_back(a->Alloc(8000));
    ASSERT_TRUE(a->Commit().ok());
  }
  std::vector<uint64_t> live;
  int rolled_back = 0, large = 0;
  for (int t = 0; t < 400; ++t) {
    const uint64_t seed = rng();
    for (Arena* a : {counted.get(), built.get()}) {
      std::mt19937_64 r(seed);
      std::vector<uint64_t> mine = live;
      ASSERT_TRUE(a->Begin().ok());
      RandomTx(r, *a, mine);
      std::optional<Arena::Savepoint> sp;
      if (r() % 3 == 0) sp = a->Mark();
      for (int i = 0; i < 6 && a->ok(); ++i) {  // Byte-level writes, some adjacent.
        const uint64_t n = r() % 4 == 0 ? 1025 + r() % 1000 : 1 + r() % 130;
        const uint64_t at = data[r() % data.size()] + r() % (8000 - n);
        const std::string bytes(n, static_cast<char>(r()));
        a->Write(at, bytes.data(), n);
        if (r() % 2 == 0) a->Write(at + n, "x", 1);
        large += a == counted.get() && n > 1024 ? 1 : 0;
      }
      if (sp.has_value() && a->ok()) {
        a->RollbackTo(*sp);
        rolled_back += a == counted.get() ? 1 : 0;
      }
      if (!a->ok()) {
        a->Abort();
        continue;
      }
      if (a == counted.get()) {
        ASSERT_TRUE(a->Commit().ok());
      } else {
        WriteSet ws;
        ASSERT_TRUE(a->Commit(&ws).ok());
        live = mine;
      }
    }
    ASSERT_EQ(counted_mem.bytes(), built_mem.bytes()) << "tx " << t;
    ASSERT_EQ(counted->stats().transactions, built->stats().transactions) << "tx " << t;
    ASSERT_EQ(counted->stats().bytes_written, built->stats().bytes_written) << "tx " << t;
    ASSERT_EQ(counted->stats().ranges_written, built->stats().ranges_written) << "tx " << t;
  }
  EXPECT_GT(counted->stats().transactions, 200u);
  EXPECT_GT(rolled_back, 50);
  EXPECT_GT(large, 100);
}

// Physical replication in miniature: a follower applying each leader write
// set ends byte-identical; undoing the leader's last write set restores
// its previous bytes exactly.
TEST(ArenaTest, FollowerApplyingWriteSetsIsByteIdenticalAndUndoRestores) {
  const uint64_t seed = 20261127;
  std::mt19937_64 rng(seed);
  SimMemory leader_mem(kSimBytes), follower_mem(kSimBytes);
  auto leader = Fresh(leader_mem);
  auto follower = Fresh(follower_mem);
  std::vector<uint64_t> live;
  for (int t = 0; t < 300; ++t) {
    const std::vector<uint8_t> before = leader_mem.bytes();
    const std::vector<uint64_t> live_before = live;
    ASSERT_TRUE(leader->Begin().ok());
    RandomTx(rng, *leader, live);
    WriteSet ws;
    if (!leader->ok()) {
      leader->Abort();
      live = live_before;
      continue;
    }
    ASSERT_TRUE(leader->Commit(&ws).ok());
    if (t % 7 == 3) {  // Speculative, never committed: undo it.
      ASSERT_TRUE(leader->UndoWriteSet(ws).ok());
      ASSERT_EQ(leader_mem.bytes(), before) << "seed=" << seed << " t=" << t;
      live = live_before;
      continue;
    }
    const std::string wire = EncodeWriteSet(ws);
    auto decoded = DecodeWriteSet(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(wire.data()), wire.size()),
        follower->size());
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_TRUE(follower->ApplyWriteSet(*decoded).ok());
    ASSERT_EQ(leader_mem.bytes(), follower_mem.bytes()) << "seed=" << seed << " t=" << t;
  }
  ASSERT_TRUE(follower->CheckHeap(nullptr, nullptr).ok());
}

// Physical replication's leader: write sets B then C applied on top of A
// inside one transaction, the recording reset after B; the write set holds
// only C's change (computed on top of B), Abort restores the bytes before
// everything, and a follower holding A+B that applies it matches a node
// that committed A, B, C.
TEST(ArenaTest, ResetRecordingKeepsOnlyLaterWritesAndAbortUndoesAll) {
  SimMemory mem(kSimBytes), other_mem(kSimBytes);
  auto arena = Fresh(mem);
  auto other = Fresh(other_mem);
  ASSERT_TRUE(other->Begin().ok());
  const uint64_t p = other->Alloc(64);
  other->Put<uint64_t>(p, 1);
  WriteSet b;
  ASSERT_TRUE(other->Commit(&b).ok());
  const std::vector<uint8_t> before = mem.bytes();

  ASSERT_TRUE(arena->Begin().ok());
  ASSERT_TRUE(arena->WritePostImages(b).ok());
  arena->ResetRecording();
  const uint64_t q = arena->Alloc(32);  // Allocator metadata recorded too.
  arena->Put<uint64_t>(p, 2);
  arena->Put<uint64_t>(q, 3);
  WriteSet c;
  ASSERT_TRUE(arena->Commit(&c).ok());
  // Nothing of B's ranges except what C rewrote: p's word.
  for (const WriteRange& r : c.ranges) {
    for (const WriteRange& rb : b.ranges) {
      if (r.offset < rb.offset + rb.post.size() && rb.offset < r.offset + r.post.size()) {
        EXPECT_TRUE((r.offset <= p && p + 8 <= r.offset + r.post.size()) ||
                    r.offset < arena_format::kRootOffset)
            << "range at " << r.offset << " came from B";
      }
    }
  }
  ASSERT_TRUE(other->ApplyWriteSet(c).ok());
  EXPECT_EQ(mem.bytes(), other_mem.bytes());

  // The same inside a transaction that is aborted: nothing stays.
  mem.Reset(before);
  auto again = Arena::Attach(&mem);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE((*again)->Begin().ok());
  ASSERT_TRUE((*again)->WritePostImages(b).ok());
  (*again)->ResetRecording();
  (*again)->Put<uint64_t>(p, 2);
  (*again)->Abort();
  EXPECT_EQ(mem.bytes(), before);

  // A write set for another arena size is refused inside the transaction.
  WriteSet foreign = b;
  foreign.arena_bytes = kSimBytes * 2;
  ASSERT_TRUE((*again)->Begin().ok());
  EXPECT_TRUE(absl::IsInvalidArgument((*again)->WritePostImages(foreign)));
  (*again)->Abort();
  EXPECT_EQ(mem.bytes(), before);
}

// A savepoint inside a transaction: an allocation that fails after it is
// undone back to it (bytes, recording, occupancy), the failure is cleared,
// and the transaction commits what came before it (the write set holds
// only that).
TEST(ArenaTest, RollbackToSavepointUndoesOnlyLaterWritesAndClearsOutOfMemory) {
  SimMemory mem(kSimBytes);
  auto a = Fresh(mem);
  ASSERT_TRUE(a->Begin().ok());
  const uint64_t p = a->Alloc(100);
  a->Write(p, "before", 6);
  const Arena::Savepoint sp = a->Mark();
  const std::vector<uint8_t> at_savepoint = mem.bytes();
  const uint64_t used_at_savepoint = a->UsedBytes();
  a->Write(p, "AFTER!", 6);  // Overwrites a range written before the savepoint.
  a->Free(p);
  uint64_t n = 0;
  while (a->Alloc(1000) != 0) ++n;
  EXPECT_GT(n, 100u);
  EXPECT_TRUE(a->out_of_memory());
  EXPECT_EQ(a->status().code(), absl::StatusCode::kResourceExhausted);
  a->RollbackTo(sp);
  EXPECT_TRUE(a->ok());
  EXPECT_FALSE(a->out_of_memory());
  EXPECT_EQ(mem.bytes(), at_savepoint);
  EXPECT_EQ(a->UsedBytes(), used_at_savepoint);
  WriteSet ws;
  ASSERT_TRUE(a->Commit(&ws).ok());
  // Only the savepoint's prefix is in the write set: applied to a fresh
  // arena it gives the same bytes.
  SimMemory other_mem(kSimBytes);
  auto other = Fresh(other_mem);
  ASSERT_TRUE(other->ApplyWriteSet(ws).ok());
  EXPECT_EQ(other_mem.bytes(), mem.bytes());
  EXPECT_EQ(a->Bytes(p, 6), "before");
  HeapShape shape;
  ASSERT_TRUE(a->CheckHeap(nullptr, &shape).ok());
  EXPECT_EQ(shape.bytes_used, a->UsedBytes());
  EXPECT_EQ(other->UsedBytes(), a->UsedBytes());
  EXPECT_EQ(a->CapacityBytes(), kSimBytes - arena_format::kHeapOffset);
}

// UsedBytes() (kept by Alloc/Free, restored by Abort and RollbackTo,
// recounted after write sets) always equals the heap walk's count, on a
// leader and on a follower that applies its write sets.
TEST(ArenaTest, UsedBytesMatchesTheHeapWalk) {
  const uint64_t seed = 4242;
  std::mt19937_64 rng(seed);
  SimMemory leader_mem(64 << 10), follower_mem(64 << 10);
  auto leader = Fresh(leader_mem);
  auto follower = Fresh(follower_mem);
  std::vector<uint64_t> live;
  auto walked = [](const Arena& a) {
    HeapShape shape;
    EXPECT_TRUE(a.CheckHeap(nullptr, &shape).ok());
    return shape.bytes_used;
  };
  int rolled_back = 0, aborted = 0;
  for (int t = 0; t < 400; ++t) {
    const std::vector<uint64_t> live_before = live;
    ASSERT_TRUE(leader->Begin().ok());
    RandomTx(rng, *leader, live);
    if (leader->ok() && rng() % 2 == 0) {
      const Arena::Savepoint sp = leader->Mark();
      const std::vector<uint64_t> live_at_sp = live;
      RandomTx(rng, *leader, live);
      if (!leader->ok() || rng() % 4 == 0) {
        ASSERT_TRUE(leader->ok() || leader->out_of_memory());
        leader->RollbackTo(sp);
        live = live_at_sp;
        rolled_back++;
      }
    }
    if (!leader->ok() || rng() % 8 == 0) {
      leader->Abort();
      live = live_before;
      aborted++;
    } else {
      WriteSet ws;
      ASSERT_TRUE(leader->Commit(&ws).ok());
      ASSERT_TRUE(follower->ApplyWriteSet(ws).ok());
    }
    ASSERT_EQ(leader->UsedBytes(), walked(*leader)) << "seed=" << seed << " tx " << t;
    ASSERT_EQ(follower->UsedBytes(), walked(*follower)) << "seed=" << seed << " tx " << t;
    ASSERT_EQ(leader_mem.bytes(), follower_mem.bytes()) << "seed=" << seed << " tx " << t;
  }
  EXPECT_GT(rolled_back, 20);
  EXPECT_GT(aborted, 20);
}

// Crash at every store of transactions that roll back to a savepoint after
// running out of memory (the rollback's own stores included): recovery
// gives the bytes before or after the transaction.
TEST(ArenaCrashTest, SavepointRollbackRecoversBeforeOrAfter) {
  const uint64_t seed = 777;
  std::mt19937_64 rng(seed);
  SimMemory mem(64 << 10);
  auto a = Fresh(mem);
  std::vector<uint64_t> live;
  uint64_t points = 0;
  int out_of_memory = 0;
  for (int t = 0; t < 60; ++t) {
    const std::vector<uint8_t> before = mem.bytes();
    // Only the images that differ from `before` are kept (memory).
    std::vector<std::vector<uint8_t>> images;
    mem.set_crash_hook([&] {
      points++;
      std::vector<uint8_t> image = mem.RecoveredImage();
      if (image != before) images.push_back(std::move(image));
    });
    ASSERT_TRUE(a->Begin().ok());
    RandomTx(rng, *a, live);
    if (a->ok()) {
      // Grow until the arena is full (often), then undo the growth.
      const Arena::Savepoint sp = a->Mark();
      const std::vector<uint64_t> live_at_sp = live;
      for (int i = 0; i < 40 && a->ok(); ++i) {
        const uint64_t q = a->Alloc(200 + rng() % 2000);
        if (q != 0) a->Write(q, "grown", 5);
      }
      out_of_memory += a->out_of_memory() ? 1 : 0;
      a->RollbackTo(sp);
      live = live_at_sp;
      ASSERT_TRUE(a->ok());
      ASSERT_TRUE(a->Commit().ok());
    } else {
      a->Abort();
    }
    mem.set_crash_hook(nullptr);
    const std::vector<uint8_t> after = mem.bytes();
    for (size_t i = 0; i < images.size(); ++i) {
      ASSERT_TRUE(images[i] == after) << "seed=" << seed << " tx " << t << " image " << i;
    }
    ASSERT_TRUE(a->CheckHeap(nullptr, nullptr).ok());
  }
  EXPECT_GT(out_of_memory, 10);
  EXPECT_GT(points, 5000u);
}

// Crash at every store of random transactions: recovery gives exactly the
// bytes before or after the transaction, and the heap checks.
TEST(ArenaCrashTest, EveryStoreRecoversBeforeOrAfter) {
  const uint64_t seed = 99;
  std::mt19937_64 rng(seed);
  SimMemory mem(64 << 10);
  auto a = Fresh(mem);
  std::vector<uint64_t> live;
  uint64_t points = 0;
  for (int t = 0; t < 200; ++t) {
    const std::vector<uint8_t> before = mem.bytes();
    std::vector<std::vector<uint8_t>> images;
    mem.set_crash_hook([&] { images.push_back(mem.RecoveredImage()); });
    ASSERT_TRUE(a->Begin().ok());
    const std::vector<uint64_t> live_before = live;
    RandomTx(rng, *a, live);
    const bool ok = a->ok();
    if (ok) {
      ASSERT_TRUE(a->Commit().ok());
    } else {
      a->Abort();
      live = live_before;
    }
    mem.set_crash_hook(nullptr);
    const std::vector<uint8_t> after = mem.bytes();
    for (size_t i = 0; i < images.size(); ++i) {
      ASSERT_TRUE(images[i] == before || images[i] == after)
          << "seed=" << seed << " tx " << t << " crash point " << i;
    }
    points += images.size();
  }
  EXPECT_GT(points, 2000u);
  // One recovered image from mid-transaction attaches and checks.
  ASSERT_TRUE(a->CheckHeap(nullptr, nullptr).ok());
}

// Crash at every store of random transactions on an arena whose heap is
// all carved into large blocks that were then freed: every small
// allocation splits one, and recovery gives the bytes before or after each
// transaction with a heap that checks.
TEST(ArenaCrashTest, SplittingRecoversBeforeOrAfter) {
  const uint64_t seed = 4242;
  std::mt19937_64 rng(seed);
  SimMemory mem(64 << 10);
  auto a = Fresh(mem);
  std::vector<uint64_t> big;
  for (uint64_t p; (p = AllocOne(*a, 6000 + rng() % 3000)) != 0;) big.push_back(p);
  FillUncarved(*a);
  const uint64_t carved = a->header().bump;
  ASSERT_TRUE(a->Begin().ok());
  for (uint64_t p : big) a->Free(p);
  ASSERT_TRUE(a->Commit().ok());
  std::vector<uint64_t> live;
  uint64_t points = 0;
  for (int t = 0; t < 80; ++t) {
    const std::vector<uint64_t> live_before = live;
    const std::vector<std::vector<uint8_t>> images = testing::CrashImages(
        mem,
        [&] {
          ASSERT_TRUE(a->Begin().ok());
          RandomTx(rng, *a, live);
          if (a->ok()) {
            ASSERT_TRUE(a->Commit().ok());
          } else {
            a->Abort();
            live = live_before;
          }
        },
        &points);
    for (size_t i = 0; i < images.size(); ++i) {
      ASSERT_TRUE(images[i] == mem.bytes()) << "seed=" << seed << " tx " << t << " image " << i;
    }
    ASSERT_TRUE(a->CheckHeap(nullptr, nullptr).ok());
  }
  EXPECT_EQ(a->header().bump, carved);  // Every block came from a split or a free list.
  EXPECT_GT(live.size(), 10u);
  EXPECT_GT(points, 2000u);
}

TEST(PmemArenaTest, CreateReopenPersistAbortAndForeignPools) {
  testing::ScratchDir dir("arena_pmem");
  PoolOptions o;
  o.path = dir.Path("a.pool");
  o.pool_bytes = 32 << 20;
  o.cluster_id = 5;
  o.node_id = 2;
  o.create_if_missing = false;
  EXPECT_EQ(PmemArenaPool::Open(o).status().code(), absl::StatusCode::kNotFound);
  o.create_if_missing = true;
  uint64_t p = 0;
  {
    auto pool = PmemArenaPool::Open(o);
    ASSERT_TRUE(pool.ok()) << pool.status();
    EXPECT_EQ((*pool)->size(), ArenaBytesForPool(32 << 20));
    auto a = Arena::Attach(pool->get());
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE((*a)->Begin().ok());
    p = (*a)->Alloc(100);
    (*a)->Write(p, "persisted", 9);
    ASSERT_TRUE((*a)->Commit().ok());
    ASSERT_TRUE((*a)->Begin().ok());
    (*a)->Write(p, "ABORTED!!", 9);
    (*a)->Free(p);
    (*a)->Abort();
    EXPECT_EQ((*a)->Bytes(p, 9), "persisted");
    // In use by this handle: a second open is refused.
    EXPECT_EQ(PmemArenaPool::Open(o).status().code(), absl::StatusCode::kFailedPrecondition);
  }
  {
    auto pool = PmemArenaPool::Open(o);
    ASSERT_TRUE(pool.ok()) << pool.status();
    auto a = Arena::Attach(pool->get());
    ASSERT_TRUE(a.ok());
    EXPECT_EQ((*a)->Bytes(p, 9), "persisted");
    std::set<uint64_t> used;
    ASSERT_TRUE((*a)->CheckHeap([&](uint64_t b) { used.insert(b); }, nullptr).ok());
    EXPECT_EQ(used, std::set<uint64_t>{p});
  }
  PoolOptions other = o;
  other.node_id = 3;
  EXPECT_EQ(PmemArenaPool::Open(other).status().code(), absl::StatusCode::kFailedPrecondition);
  other.check_identity = false;
  EXPECT_TRUE(PmemArenaPool::Open(other).ok());
  testing::WriteFile(dir.Path("junk"), std::string(1 << 20, 'x'));
  other.path = dir.Path("junk");
  EXPECT_FALSE(PmemArenaPool::Open(other).ok());
  other.path = dir.Path("small");
  other.pool_bytes = 1 << 20;
  EXPECT_EQ(PmemArenaPool::Open(other).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ArenaTest, AttachRejectsDamage) {
  SimMemory mem(kSimBytes);
  Fresh(mem);
  std::vector<uint8_t> image = mem.bytes();
  image[0] ^= 1;
  SimMemory bad(kSimBytes);
  bad.Reset(image);
  EXPECT_EQ(Arena::Attach(&bad).status().code(), absl::StatusCode::kFailedPrecondition);
  image = mem.bytes();
  image[16] ^= 1;  // arena_bytes: checksum
  bad.Reset(image);
  EXPECT_EQ(Arena::Attach(&bad).status().code(), absl::StatusCode::kDataLoss);
  image = mem.bytes();
  image[40] = 0xff;  // bump beyond
  image[47] = 0x7f;
  bad.Reset(image);
  EXPECT_EQ(Arena::Attach(&bad).status().code(), absl::StatusCode::kDataLoss);
  // A heap with a corrupted block header.
  auto a = Arena::Attach(&mem);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->Begin().ok());
  const uint64_t p = (*a)->Alloc(50);
  (*a)->Free((*a)->Alloc(50));
  ASSERT_TRUE((*a)->Commit().ok());
  image = mem.bytes();
  image[p - 8] ^= 1;
  bad.Reset(image);
  auto b = Arena::Attach(&bad);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->CheckHeap(nullptr, nullptr).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace blizzard::structures
