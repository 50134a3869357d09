#include "structures/deque.h"

#include <deque>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "structures/arena_testing.h"

namespace blizzard::structures {
namespace {

using testing::CheckOwnership;
using testing::FreshArena;

absl::Status CheckDeque(Arena& a, uint64_t at) {
  return CheckOwnership(a, [&](const std::function<absl::Status(uint64_t)>& own) {
    return Deque(a, at).Check(own);
  });
}

void ExpectEqual(Arena& a, uint64_t at, const std::deque<std::string>& model, int64_t seq,
                 std::mt19937_64& rng) {
  Deque d(a, at);
  ASSERT_EQ(d.size(), model.size());
  EXPECT_EQ(d.first_seq(), seq);
  std::vector<std::string> all;
  if (!model.empty()) d.Range(0, model.size() - 1, [&](std::string_view v) { all.emplace_back(v); });
  ASSERT_EQ(all, std::vector<std::string>(model.begin(), model.end()));
  for (int i = 0; i < 5 && !model.empty(); ++i) {
    const uint64_t k = rng() % model.size();
    ASSERT_EQ(d.At(k), model[k]);
    const uint64_t to = k + rng() % (model.size() - k);
    std::vector<std::string> part;
    d.Range(k, to, [&](std::string_view v) { part.emplace_back(v); });
    ASSERT_EQ(part, std::vector<std::string>(model.begin() + static_cast<long>(k),
                                             model.begin() + static_cast<long>(to) + 1));
  }
}

TEST(DequeTest, MatchesModel) {
  const uint64_t seed = 42;
  std::mt19937_64 rng(seed);
  SimMemory mem(8 << 20);
  auto a = FreshArena(mem);
  ASSERT_TRUE(a->Begin().ok());
  const uint64_t at = Deque::Create(*a);
  ASSERT_TRUE(a->Commit().ok());
  std::deque<std::string> model;
  int64_t seq = 0;
  for (int t = 0; t < 400; ++t) {
    ASSERT_TRUE(a->Begin().ok());
    Deque d(*a, at);
    // Phases: grow, shrink, mixed; from both ends.
    const int bias = (t / 50) % 3;
    for (int i = 0; i < 30; ++i) {
      const int op = static_cast<int>(rng() % 4);
      const bool push = bias == 0 ? rng() % 4 != 0 : (bias == 1 ? rng() % 4 == 0 : rng() % 2 == 0);
      const std::string v = std::to_string(rng() % 100000) + std::string(rng() % 30, 'e');
      if (push || model.empty()) {
        if (op % 2 == 0) {
          ASSERT_TRUE(d.PushFront(v));
          model.push_front(v);
          seq--;
        } else {
          ASSERT_TRUE(d.PushBack(v));
          model.push_back(v);
        }
      } else if (op % 2 == 0) {
        ASSERT_EQ(d.PopFront(), model.front());
        model.pop_front();
        seq++;
      } else {
        ASSERT_EQ(d.PopBack(), model.back());
        model.pop_back();
      }
    }
    ASSERT_TRUE(a->Commit().ok());
    ExpectEqual(*a, at, model, seq, rng);
    ASSERT_TRUE(CheckDeque(*a, at).ok()) << CheckDeque(*a, at) << " seed=" << seed;
  }
  testing::ExpectDestroyFreesAll(*a, [&] { Deque(*a, at).Destroy(); });
}

TEST(DequeTest, CheckFindsDamage) {
  SimMemory mem(1 << 20);
  auto a = FreshArena(mem);
  ASSERT_TRUE(a->Begin().ok());
  const uint64_t at = Deque::Create(*a);
  Deque d(*a, at);
  for (int i = 0; i < 100; ++i) d.PushBack("x");
  ASSERT_TRUE(a->Commit().ok());
  ASSERT_TRUE(CheckDeque(*a, at).ok());
  ASSERT_TRUE(a->Begin().ok());
  a->Put<uint64_t>(at, 99);  // count
  ASSERT_TRUE(a->Commit().ok());
  EXPECT_EQ(CheckDeque(*a, at).code(), absl::StatusCode::kDataLoss);
}

TEST(DequeCrashTest, EveryStoreRecoversBeforeOrAfter) {
  uint64_t at = 0;
  uint64_t points = 0;
  testing::CrashEveryStore(
      11, 128 << 10, 300,
      [&](Arena& a, std::mt19937_64& rng) {
        if (at == 0) {
          at = Deque::Create(a);
          return;
        }
        Deque d(a, at);
        for (int i = 0; i < 6; ++i) {
          const uint64_t r = rng() % 5;
          if (r < 3 || d.size() == 0) {
            (r % 2 ? d.PushFront("f") : d.PushBack(std::string(rng() % 20, 'b')));
          } else if (r == 3) {
            d.PopFront();
          } else {
            d.PopBack();
          }
        }
      },
      [&](Arena& a) { ASSERT_TRUE(CheckDeque(a, at).ok()) << CheckDeque(a, at); }, &points);
  EXPECT_GT(points, 10000u);
}

}  // namespace
}  // namespace blizzard::structures
