#include "structures/line_table.h"

#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace blizzard::structures {
namespace {

// Against std::map through growth and many clears: the same entries, the
// same masks, insertion order kept, nothing left over after Clear().
TEST(LineTableTest, MatchesAMapThroughGrowthAndClears) {
  std::mt19937_64 rng(7);
  LineTable table;
  for (int round = 0; round < 40; ++round) {
    std::map<uint64_t, uint64_t> model;
    std::vector<uint64_t> order;
    // Rounds alternate between a few lines and thousands (growth), with
    // clustered lines (neighbours probe into each other) and far ones.
    const int n = round % 2 == 0 ? 1 + static_cast<int>(rng() % 20) : 3000;
    for (int i = 0; i < n; ++i) {
      const uint64_t line = rng() % 3 == 0 ? rng() >> 8 : rng() % 4096;
      const uint64_t bits = rng();
      bool added = false;
      LineTable::Entry* e = table.Insert(line, &added);
      ASSERT_EQ(added, model.count(line) == 0) << "line " << line;
      if (added) order.push_back(line);
      ASSERT_EQ(e->line, line);
      e->written |= bits;
      model[line] |= bits;
    }
    ASSERT_EQ(table.size(), model.size());
    for (const auto& [line, bits] : model) {
      const LineTable::Entry* e = table.Find(line);
      ASSERT_NE(e, nullptr) << "line " << line;
      EXPECT_EQ(e->written, bits);
    }
    std::vector<uint64_t> seen;
    table.ForEach([&](LineTable::Entry& e) { seen.push_back(e.line); });
    EXPECT_EQ(seen, order);
    table.Clear();
    EXPECT_EQ(table.size(), 0u);
    for (const auto& [line, bits] : model) EXPECT_EQ(table.Find(line), nullptr);
    bool added = false;
    EXPECT_EQ(table.Insert(order.front(), &added)->written, 0u);  // Cleared masks.
    EXPECT_TRUE(added);
    table.Clear();
  }
}

// A large transaction grows the table; the small ones after it shrink it
// back (and still find what they insert).
TEST(LineTableTest, ShrinksAfterALargeTransaction) {
  LineTable table;
  const size_t small = table.capacity();
  bool added = false;
  for (uint64_t line = 0; line < 50000; ++line) table.Insert(line * 3, &added);
  EXPECT_GE(table.capacity(), 100000u);
  table.Clear();
  for (uint64_t line = 0; line < 10; ++line) table.Insert(line, &added)->written = line;
  EXPECT_EQ(table.Find(7)->written, 7u);
  table.Clear();
  EXPECT_EQ(table.capacity(), small);
  for (int round = 0; round < 3; ++round) {  // A steady size keeps the capacity.
    for (uint64_t line = 0; line < 3000; ++line) table.Insert(line, &added);
    const size_t steady = table.capacity();
    table.Clear();
    EXPECT_EQ(table.capacity(), steady);
  }
}

}  // namespace
}  // namespace blizzard::structures
