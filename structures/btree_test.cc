#include "structures/btree.h"

#include <random>
#include <set>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "structures/arena_testing.h"

namespace blizzard::structures {
namespace {

using testing::CheckOwnership;
using testing::FreshArena;
using Model = std::set<std::pair<double, std::string>>;
using Keys = std::vector<std::pair<double, std::string>>;

absl::Status CheckTree(Arena& a, uint64_t at) {
  return CheckOwnership(a, [&](const std::function<absl::Status(uint64_t)>& own) {
    return BTree(a, at).Check(own);
  });
}

std::vector<std::pair<double, std::string>> All(Arena& a, uint64_t at) {
  std::vector<std::pair<double, std::string>> out;
  BTree(a, at).ScanRank(0, [&](ZKey k) {
    out.emplace_back(k.score, std::string(k.member));
    return true;
  });
  return out;
}

TEST(BTreeTest, MatchesModelWithScans) {
  const uint64_t seed = 5;
  std::mt19937_64 rng(seed);
  SimMemory mem(16 << 20);
  auto a = FreshArena(mem);
  ASSERT_TRUE(a->Begin().ok());
  const uint64_t at = BTree::Create(*a);
  ASSERT_TRUE(a->Commit().ok());
  Model model;
  uint64_t max_height = 0;
  for (int t = 0; t < 300; ++t) {
    ASSERT_TRUE(a->Begin().ok());
    BTree tree(*a, at);
    const bool grow = (t / 60) % 2 == 0;
    for (int i = 0; i < 60; ++i) {
      // Few distinct scores: many ties broken by member.
      const double score = static_cast<double>(static_cast<int>(rng() % 200) - 100) / 4;
      const std::string member = "m" + std::to_string(rng() % 3000);
      if (grow ? rng() % 4 != 0 : rng() % 4 == 0) {
        EXPECT_EQ(tree.Insert({score, member}), model.emplace(score, member).second);
      } else if (!model.empty()) {
        // Erase an existing key half the time, a random one otherwise.
        auto it = model.begin();
        if (rng() % 2) std::advance(it, static_cast<long>(rng() % model.size()));
        const auto key = rng() % 2 ? *it : std::make_pair(score, member);
        EXPECT_EQ(tree.Erase({key.first, key.second}), model.erase(key) == 1);
      }
    }
    ASSERT_TRUE(a->Commit().ok());
    ASSERT_EQ(BTree(*a, at).size(), model.size());
    ASSERT_EQ(All(*a, at), Keys(model.begin(), model.end()))
        << "seed=" << seed << " t=" << t;
    ASSERT_TRUE(CheckTree(*a, at).ok()) << CheckTree(*a, at) << " seed=" << seed << " t=" << t;
    max_height = std::max(max_height, a->Load<btree_format::Header>(at).height);
    // Score scans (inclusive and exclusive), rank scans and reverse scans.
    const double lo = static_cast<double>(static_cast<int>(rng() % 200) - 100) / 4;
    const bool excl = rng() % 2;
    std::vector<std::pair<double, std::string>> got, want;
    BTree(*a, at).ScanFrom(lo, excl, [&](ZKey k) {
      got.emplace_back(k.score, std::string(k.member));
      return got.size() < 25;
    });
    for (const auto& k : model) {
      if (k.first > lo || (!excl && k.first == lo)) want.push_back(k);
      if (want.size() == 25) break;
    }
    ASSERT_EQ(got, want);
    if (!model.empty()) {
      const uint64_t r = rng() % model.size();
      got.clear();
      BTree(*a, at).ScanRank(r, [&](ZKey k) {
        got.emplace_back(k.score, std::string(k.member));
        return got.size() < 3;
      });
      auto it = model.begin();
      std::advance(it, static_cast<long>(r));
      ASSERT_EQ(got.front(), *it);
      got.clear();
      BTree(*a, at).ScanBack([&](ZKey k) {
        got.emplace_back(k.score, std::string(k.member));
        return false;
      });
      ASSERT_EQ(got.front(), *model.rbegin());
    }
  }
  EXPECT_GE(max_height, 3u);
  testing::ExpectDestroyFreesAll(*a, [&] { BTree(*a, at).Destroy(); });
}

TEST(BTreeTest, CheckFindsDamage) {
  SimMemory mem(1 << 20);
  auto a = FreshArena(mem);
  ASSERT_TRUE(a->Begin().ok());
  const uint64_t at = BTree::Create(*a);
  BTree t(*a, at);
  for (int i = 0; i < 200; ++i) t.Insert({static_cast<double>(i), "m"});
  ASSERT_TRUE(a->Commit().ok());
  ASSERT_TRUE(CheckTree(*a, at).ok());
  // Swap two keys of the first leaf: out of order.
  const uint64_t leaf = a->Load<btree_format::Header>(at).first_leaf;
  const auto node = a->Load<btree_format::Node>(leaf);
  ASSERT_TRUE(a->Begin().ok());
  a->Put<uint64_t>(leaf + offsetof(btree_format::Node, slots), node.slots[1]);
  a->Put<uint64_t>(leaf + offsetof(btree_format::Node, slots) + 8, node.slots[0]);
  ASSERT_TRUE(a->Commit().ok());
  EXPECT_EQ(CheckTree(*a, at).code(), absl::StatusCode::kDataLoss);
}

TEST(BTreeCrashTest, EveryStoreRecoversBeforeOrAfter) {
  uint64_t at = 0;
  uint64_t points = 0;
  testing::CrashEveryStore(
      13, 256 << 10, 250,
      [&](Arena& a, std::mt19937_64& rng) {
        if (at == 0) {
          at = BTree::Create(a);
          return;
        }
        BTree t(a, at);
        for (int i = 0; i < 5; ++i) {
          const double s = static_cast<double>(rng() % 50);
          const std::string m = std::to_string(rng() % 400);
          if (rng() % 3 != 0) {
            t.Insert({s, m});
          } else {
            t.Erase({s, m});
          }
        }
      },
      [&](Arena& a) { ASSERT_TRUE(CheckTree(a, at).ok()) << CheckTree(a, at); }, &points);
  EXPECT_GT(points, 10000u);
}

}  // namespace
}  // namespace blizzard::structures
