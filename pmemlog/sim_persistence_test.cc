#include "pmemlog/sim_persistence.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace blizzard::pmemlog {
namespace {

uint64_t WordAt(const std::vector<uint8_t>& image, uint64_t offset) {
  uint64_t w;
  std::memcpy(&w, &image[offset], 8);
  return w;
}

TEST(SimPersistenceTest, OnlyFlushedAndDrainedStoresArePersisted) {
  SimPersistence sim({4096, 1, 0.0});
  const uint64_t v = 0x1122334455667788;
  sim.Store(sim.base() + 64, &v, 8);
  EXPECT_EQ(WordAt(sim.CrashImage(CrashMode::kPersistedOnly), 64), 0u);
  sim.Flush(sim.base() + 64, 8);
  EXPECT_EQ(WordAt(sim.CrashImage(CrashMode::kPersistedOnly), 64), 0u);  // No fence yet.
  sim.Drain();
  EXPECT_EQ(WordAt(sim.CrashImage(CrashMode::kPersistedOnly), 64), v);
  EXPECT_EQ(sim.pending_words(), 0u);
}

TEST(SimPersistenceTest, DrainWithoutFlushPersistsNothing) {
  SimPersistence sim({4096, 1, 0.0});
  sim.Store64(reinterpret_cast<uint64_t*>(sim.base()), 42);
  sim.Drain();
  EXPECT_EQ(WordAt(sim.CrashImage(CrashMode::kPersistedOnly), 0), 0u);
  EXPECT_EQ(sim.pending_words(), 1u);
}

TEST(SimPersistenceTest, FlushCoversWholeCacheLines) {
  SimPersistence sim({4096, 1, 0.0});
  const uint64_t a = 1, b = 2, c = 3;
  sim.Store(sim.base() + 0, &a, 8);
  sim.Store(sim.base() + 56, &b, 8);
  sim.Store(sim.base() + 64, &c, 8);  // Next line.
  sim.Persist(sim.base() + 8, 1);
  const std::vector<uint8_t> image = sim.CrashImage(CrashMode::kPersistedOnly);
  EXPECT_EQ(WordAt(image, 0), a);
  EXPECT_EQ(WordAt(image, 56), b);
  EXPECT_EQ(WordAt(image, 64), 0u);
}

TEST(SimPersistenceTest, CopyNoDrainIsDurableAfterTheNextDrain) {
  SimPersistence sim({4096, 1, 0.0});
  uint8_t data[100];
  for (int i = 0; i < 100; ++i) data[i] = static_cast<uint8_t>(i + 1);
  sim.CopyNoDrain(sim.base() + 3, data, sizeof(data));
  EXPECT_EQ(sim.CrashImage(CrashMode::kPersistedOnly)[3], 0);
  sim.Drain();
  const std::vector<uint8_t> image = sim.CrashImage(CrashMode::kPersistedOnly);
  EXPECT_EQ(std::memcmp(&image[3], data, sizeof(data)), 0);
}

TEST(SimPersistenceTest, StreamedLinesAndWordsAreDurableAfterTheNextDrain) {
  SimPersistence sim({256, 1, 0.0});
  uint8_t line[128];
  std::memset(line, 0xab, sizeof(line));
  sim.StreamNoDrain(sim.base() + 64, line, sizeof(line));
  sim.Store64NoDrain(reinterpret_cast<uint64_t*>(sim.base() + 8), 42);
  EXPECT_EQ(sim.CrashImage(CrashMode::kPersistedOnly), std::vector<uint8_t>(256, 0));
  sim.Drain();
  const std::vector<uint8_t> image = sim.CrashImage(CrashMode::kPersistedOnly);
  EXPECT_EQ(image[64], 0xab);
  EXPECT_EQ(image[191], 0xab);
  EXPECT_EQ(image[192], 0);
  uint64_t word;
  std::memcpy(&word, image.data() + 8, sizeof(word));
  EXPECT_EQ(word, 42u);
  EXPECT_EQ(sim.pending_words(), 0u);
}

TEST(SimPersistenceTest, TornImagesKeepARandomSubsetOfPendingWordsWhole) {
  SimPersistence sim({4096, 7, 0.0});
  for (uint64_t w = 0; w < 256; ++w) {
    const uint64_t v = 0x0101010101010101ull * (w % 255 + 1);
    sim.Store(sim.base() + w * 8, &v, 8);
  }
  const std::vector<uint8_t> image = sim.CrashImage(CrashMode::kTorn);
  int survived = 0;
  for (uint64_t w = 0; w < 256; ++w) {
    const uint64_t got = WordAt(image, w * 8);
    ASSERT_TRUE(got == 0 || got == 0x0101010101010101ull * (w % 255 + 1)) << "torn word " << w;
    survived += got != 0;
  }
  EXPECT_GT(survived, 64);  // ~128 expected; the seed is fixed.
  EXPECT_LT(survived, 192);
}

TEST(SimPersistenceTest, EvictionCanPersistAnOlderValue) {
  SimPersistence sim({4096, 3, 1.0});  // Always evict.
  const uint64_t old_value = 5, new_value = 6;
  sim.Store(sim.base(), &old_value, 8);
  sim.Store(sim.base(), &new_value, 8);
  EXPECT_EQ(WordAt(sim.CrashImage(CrashMode::kPersistedOnly), 0), old_value);
}

TEST(SimPersistenceTest, HookSeesEveryEventInOrder) {
  SimPersistence sim({4096, 1, 0.0});
  std::vector<uint64_t> seen;
  sim.set_event_hook([&](uint64_t e) { seen.push_back(e); });
  const uint64_t v = 9;
  sim.Store(sim.base(), &v, 8);                              // 1
  sim.Store64(reinterpret_cast<uint64_t*>(sim.base()), 10);  // 2
  sim.CopyNoDrain(sim.base() + 8, &v, 8);                    // 3
  sim.Persist(sim.base(), 16);                               // 4 (flush), 5 (drain)
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(sim.events(), 5u);
}

TEST(SimPersistenceTest, RestartFromImageIsFullyDurable) {
  std::vector<uint8_t> image(4096, 0xab);
  SimPersistence sim({4096, 1, 0.0}, image);
  EXPECT_EQ(sim.base()[100], 0xab);
  EXPECT_EQ(sim.CrashImage(CrashMode::kTorn), image);
}

TEST(SimPersistenceDeathTest, StreamingPartialLinesAborts) {
  SimPersistence sim({256, 1, 0.0});
  uint8_t line[64] = {};
  EXPECT_DEATH(sim.StreamNoDrain(sim.base() + 8, line, 64), "partial cache lines");
  EXPECT_DEATH(sim.StreamNoDrain(sim.base(), line, 40), "partial cache lines");
}

TEST(SimPersistenceDeathTest, EventsOutsideTheRegionAbort) {
  SimPersistence sim({4096, 1, 0.0});
  const uint64_t v = 1;
  EXPECT_DEATH(sim.Store(sim.base() + 4090, &v, 8), "outside");
}

}  // namespace
}  // namespace blizzard::pmemlog
