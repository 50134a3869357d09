#include "structures/arena.h"

#include <map>
#include <random>
#include <set>

#include "gtest/gtest.h"
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
