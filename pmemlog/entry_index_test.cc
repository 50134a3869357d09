#include "pmemlog/entry_index.h"

#include <deque>

#include "gtest/gtest.h"

namespace blizzard::pmemlog {
namespace {

TEST(EntryIndexTest, BehavesLikeADequeAcrossGrowthAndWrap) {
  EntryIndex index;
  std::deque<IndexedEntry> model;
  uint64_t next = 0;
  // Grows past several capacities while popping from both ends, so the
  // live window wraps around the buffer many times.
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 37 + round; ++i) {
      index.PushBack({next, next / 3});
      model.push_back({next, next / 3});
      ++next;
    }
    const size_t front = model.size() / 3;
    index.PopFront(front);
    model.erase(model.begin(), model.begin() + front);
    const size_t back = model.size() / 5;
    index.PopBack(back);
    model.erase(model.end() - back, model.end());
    ASSERT_EQ(index.size(), model.size());
    for (size_t i = 0; i < model.size(); ++i) {
      ASSERT_EQ(index[i].offset, model[i].offset);
      ASSERT_EQ(index[i].term, model[i].term);
    }
  }
  index.Clear();
  EXPECT_TRUE(index.empty());
}

}  // namespace
}  // namespace blizzard::pmemlog
