// Test helpers for structures on the arena: fresh simulated arenas, an
// ownership check (every used block owned by exactly one structure, none
// leaked), and the crash harness (recover at every store of a transaction,
// require the bytes before or after it).
#ifndef BLIZZARD_STRUCTURES_ARENA_TESTING_H_
#define BLIZZARD_STRUCTURES_ARENA_TESTING_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "structures/arena.h"
#include "structures/sim_memory.h"

namespace blizzard::structures::testing {

inline std::unique_ptr<Arena> FreshArena(SimMemory& mem) {
  EXPECT_TRUE(Arena::Format(&mem).ok());
  auto a = Arena::Attach(&mem);
  EXPECT_TRUE(a.ok()) << a.status();
  return std::move(*a);
}

// Runs `check` with an `own` callback, then requires that the blocks it
// owned are exactly the heap's used blocks, each owned once.
inline absl::Status CheckOwnership(
    const Arena& arena,
    const std::function<absl::Status(const std::function<absl::Status(uint64_t)>&)>& check) {
  absl::flat_hash_set<uint64_t> owned;
  auto own = [&](uint64_t b) -> absl::Status {
    if (!owned.insert(b).second) {
      return absl::DataLossError(absl::StrFormat("block %d owned twice", b));
    }
    return absl::OkStatus();
  };
  if (auto s = check(own); !s.ok()) return s;
  uint64_t used = 0;
  absl::Status missing;
  if (auto s = arena.CheckHeap(
          [&](uint64_t b) {
            used++;
            if (!owned.contains(b) && missing.ok()) {
              missing = absl::DataLossError(absl::StrFormat("block %d leaked", b));
            }
          },
          nullptr);
      !s.ok()) {
    return s;
  }
  if (!missing.ok()) return missing;
  if (used != owned.size()) return absl::DataLossError("owned blocks that are not in use");
  return absl::OkStatus();
}

// Runs `destroy` in a transaction and requires an empty heap after it.
inline void ExpectDestroyFreesAll(Arena& arena, const std::function<void()>& destroy) {
  ASSERT_TRUE(arena.Begin().ok());
  destroy();
  ASSERT_TRUE(arena.Commit().ok());
  HeapShape shape;
  ASSERT_TRUE(arena.CheckHeap(nullptr, &shape).ok());
  EXPECT_EQ(shape.blocks_used, 0u);
}

// Crash harness: runs `tx` (which mutates inside an open transaction and
// returns whether to commit) `txs` times; at every crash point the
// recovered image must equal the bytes before or after the transaction.
// `check` runs on the committed state after every transaction.
inline void CrashEveryStore(uint64_t seed, uint64_t arena_bytes, int txs,
                            const std::function<void(Arena&, std::mt19937_64&)>& tx,
                            const std::function<void(Arena&)>& check,
                            uint64_t* crash_points = nullptr) {
  std::mt19937_64 rng(seed);
  SimMemory mem(arena_bytes);
  auto arena = FreshArena(mem);
  uint64_t points = 0;
  for (int t = 0; t < txs; ++t) {
    const std::vector<uint8_t> before = mem.bytes();
    // Images equal to `before` are fine; the others must equal `after`.
    std::vector<std::vector<uint8_t>> images;
    uint64_t tx_points = 0;
    mem.set_crash_hook([&] {
      tx_points++;
      std::vector<uint8_t> image = mem.RecoveredImage();
      if (image != before) images.push_back(std::move(image));
    });
    ASSERT_TRUE(arena->Begin().ok());
    tx(*arena, rng);
    if (arena->ok()) {
      ASSERT_TRUE(arena->Commit().ok());
    } else {
      arena->Abort();
    }
    mem.set_crash_hook(nullptr);
    const std::vector<uint8_t>& after = mem.bytes();
    for (size_t i = 0; i < images.size(); ++i) {
      ASSERT_TRUE(images[i] == after) << "seed=" << seed << " tx " << t
                                      << ": a crash image is neither before nor after";
    }
    points += tx_points;
    check(*arena);
    if (::testing::Test::HasFatalFailure()) return;
  }
  if (crash_points != nullptr) *crash_points = points;
}

}  // namespace blizzard::structures::testing

#endif  // BLIZZARD_STRUCTURES_ARENA_TESTING_H_
