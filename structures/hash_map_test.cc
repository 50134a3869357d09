#include "structures/hash_map.h"

#include <map>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "structures/arena_testing.h"

namespace blizzard::structures {
namespace {

using testing::CheckOwnership;
using testing::FreshArena;

std::map<std::string, std::string> Dump(Arena& a, uint64_t at) {
  std::map<std::string, std::string> out;
  HashMap m(a, at);
  m.ForEach([&](uint64_t e) { out.emplace(std::string(m.Key(e)), std::string(m.Value(e))); });
  return out;
}

absl::Status CheckMap(const Arena& a, uint64_t at) {
  return CheckOwnership(a, [&](const std::function<absl::Status(uint64_t)>& own) {
    return HashMap(const_cast<Arena&>(a), at).Check(own);
  });
}

std::string RandomValue(std::mt19937_64& rng) {
  std::string v(rng() % 4 == 0 ? rng() % 600 : rng() % 20, 'x');
  for (char& c : v) c = static_cast<char>('a' + rng() % 26);
  return v;
}

// Random Put/Erase/Append against a std::map through growth (several
// incremental resizes) and shrinking; aborted transactions change nothing.
TEST(HashMapTest, MatchesModelThroughResizes) {
  const uint64_t seed = 1234;
  std::mt19937_64 rng(seed);
  SimMemory mem(16 << 20);
  auto a = FreshArena(mem);
  ASSERT_TRUE(a->Begin().ok());
  const uint64_t at = HashMap::Create(*a);
  ASSERT_TRUE(a->Commit().ok());
  std::map<std::string, std::string> model;
  bool saw_resize = false;
  for (int t = 0; t < 600; ++t) {
    const uint64_t keys = t < 400 ? 50 + 10 * static_cast<uint64_t>(t) : 200;
    const bool abort = t % 17 == 5;
    auto next = model;
    const std::vector<uint8_t> before = mem.bytes();
    ASSERT_TRUE(a->Begin().ok());
    HashMap m(*a, at);
    for (int i = 0; i < 20; ++i) {
      const std::string k = "k" + std::to_string(rng() % keys);
      const int op = static_cast<int>(rng() % 10);
      if (op < 6) {
        const std::string v = RandomValue(rng);
        bool inserted = false;
        ASSERT_NE(m.Put(k, v, &inserted), 0u);
        EXPECT_EQ(inserted, next.count(k) == 0);
        next[k] = v;
      } else if (op < 8) {
        EXPECT_EQ(m.Erase(k), next.erase(k) == 1);
      } else {
        const std::string v = RandomValue(rng);
        const uint64_t e = m.Append(k, v);
        EXPECT_EQ(e != 0, next.count(k) == 1);
        if (e != 0) next[k] += v;
      }
      saw_resize |= m.resizing();
    }
    if (abort) {
      a->Abort();
      ASSERT_EQ(mem.bytes(), before) << "seed=" << seed << " t=" << t;
    } else {
      ASSERT_TRUE(a->Commit().ok());
      model = std::move(next);
    }
    ASSERT_EQ(Dump(*a, at), model) << "seed=" << seed << " t=" << t;
    HashMap m2(*a, at);
    for (const auto& [k, v] : model) {
      const uint64_t e = m2.Find(k);
      ASSERT_NE(e, 0u);
      ASSERT_EQ(m2.Value(e), v);
    }
    EXPECT_EQ(m2.Find("absent"), 0u);
    if (t % 10 == 0 || m2.resizing()) {
      ASSERT_TRUE(CheckMap(*a, at).ok()) << CheckMap(*a, at);
    }
  }
  EXPECT_TRUE(saw_resize);
  EXPECT_GE(HashMap(*a, at).buckets(), 2048u);
  testing::ExpectDestroyFreesAll(*a, [&] { HashMap(*a, at).Destroy(); });
}

TEST(HashMapTest, CheckFindsDamage) {
  SimMemory mem(1 << 20);
  auto a = FreshArena(mem);
  ASSERT_TRUE(a->Begin().ok());
  const uint64_t at = HashMap::Create(*a);
  HashMap m(*a, at);
  const uint64_t e = m.Put("key", "value");
  ASSERT_TRUE(a->Commit().ok());
  ASSERT_TRUE(CheckMap(*a, at).ok());
  // A wrong stored hash, then a wrong count.
  ASSERT_TRUE(a->Begin().ok());
  a->Put<uint64_t>(e + 8, 12345);
  ASSERT_TRUE(a->Commit().ok());
  EXPECT_EQ(CheckMap(*a, at).code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(a->Begin().ok());
  a->Put<uint64_t>(e + 8, HashKey("key"));
  a->Put<uint64_t>(at, 2);
  ASSERT_TRUE(a->Commit().ok());
  EXPECT_EQ(CheckMap(*a, at).code(), absl::StatusCode::kDataLoss);
  // A leaked block.
  ASSERT_TRUE(a->Begin().ok());
  a->Put<uint64_t>(at, 1);
  a->Alloc(10);
  ASSERT_TRUE(a->Commit().ok());
  EXPECT_EQ(CheckMap(*a, at).code(), absl::StatusCode::kDataLoss);
}

TEST(HashMapCrashTest, EveryStoreRecoversBeforeOrAfter) {
  uint64_t at = 0;
  std::map<std::string, std::string> model;
  uint64_t points = 0;
  testing::CrashEveryStore(
      7, 256 << 10, 250,
      [&](Arena& a, std::mt19937_64& rng) {
        if (at == 0) {
          at = HashMap::Create(a);
          return;
        }
        HashMap m(a, at);
        for (int i = 0; i < 4; ++i) {
          const std::string k = "k" + std::to_string(rng() % 300);
          if (rng() % 3 != 0) {
            m.Put(k, std::string(rng() % 40, 'v'));
          } else if (rng() % 2) {
            m.Erase(k);
          } else {
            m.Append(k, "ab");
          }
        }
      },
      [&](Arena& a) { ASSERT_TRUE(CheckMap(a, at).ok()) << CheckMap(a, at); }, &points);
  EXPECT_GT(points, 10000u);
}

}  // namespace
}  // namespace blizzard::structures
