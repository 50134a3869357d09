#include "transport/tcp/byte_ring.h"

#include <deque>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "transport/sim/splitmix64.h"

namespace blizzard::transport::tcp {
namespace {

std::vector<uint8_t> ReadAll(const ByteRing& ring) {
  iovec iov[2];
  int count = ring.Readable(iov);
  std::vector<uint8_t> out;
  for (int i = 0; i < count; ++i) {
    auto* p = static_cast<uint8_t*>(iov[i].iov_base);
    out.insert(out.end(), p, p + iov[i].iov_len);
  }
  return out;
}

TEST(ByteRingTest, StartsEmpty) {
  ByteRing ring(100);
  iovec iov[2];
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.Readable(iov), 0);
  EXPECT_EQ(ring.capacity(), 0u);  // Nothing allocated until used.
}

TEST(ByteRingTest, RefusesToExceedItsBoundAtomically) {
  ByteRing ring(10);
  std::vector<uint8_t> a(6, 1), b(4, 2), c(1, 3);
  ASSERT_TRUE(ring.Append(a, b));
  EXPECT_FALSE(ring.Append(c, {}));
  EXPECT_EQ(ring.size(), 10u);
  ring.Consume(6);
  EXPECT_FALSE(ring.Append(a, b));  // Needs 10, has 6: nothing appended.
  EXPECT_EQ(ring.size(), 4u);
  EXPECT_EQ(ReadAll(ring), b);
}

TEST(ByteRingTest, WrapsIntoTwoIovecsAndPeeksAcrossTheSeam) {
  ByteRing ring(ByteRing::kCapacityInitial);
  std::vector<uint8_t> fill(ByteRing::kCapacityInitial - 10, 0);
  ASSERT_TRUE(ring.Append(fill, {}));
  ring.Consume(fill.size() - 4);  // 4 old bytes left near the end.
  std::vector<uint8_t> tail = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
  ASSERT_TRUE(ring.Append(tail, {}));
  EXPECT_EQ(ring.capacity(), ByteRing::kCapacityInitial);  // Did not grow.
  iovec iov[2];
  EXPECT_EQ(ring.Readable(iov), 2);
  uint8_t seam[6];
  ring.Peek(8, absl::MakeSpan(seam));
  EXPECT_EQ(std::vector<uint8_t>(seam, seam + 6),
            std::vector<uint8_t>({5, 6, 7, 8, 9, 10}));
}

// Random appends/consumes against a std::deque model, growth included.
TEST(ByteRingTest, MatchesAModel) {
  constexpr uint64_t kSeed = 77;
  SCOPED_TRACE(absl::StrFormat("seed=%d", kSeed));
  SplitMix64 random(kSeed);
  ByteRing ring(1u << 20);
  std::deque<uint8_t> model;
  uint8_t next = 0;
  for (int step = 0; step < 20000; ++step) {
    if (random.Chance(0.55)) {
      std::vector<uint8_t> a(random.Uniform(0, 3000)), b(random.Uniform(0, 3000));
      for (auto& x : a) x = next++;
      for (auto& x : b) x = next++;
      bool fits = model.size() + a.size() + b.size() <= ring.capacity_max();
      ASSERT_EQ(ring.Append(a, b), fits);
      if (fits) {
        model.insert(model.end(), a.begin(), a.end());
        model.insert(model.end(), b.begin(), b.end());
      } else {
        next -= a.size() + b.size();
      }
    } else if (!model.empty()) {
      size_t n = random.Uniform(0, model.size());
      if (n >= 4) {
        uint8_t probe[4];
        size_t offset = random.Uniform(0, n - 4);
        ring.Peek(offset, absl::MakeSpan(probe));
        for (int i = 0; i < 4; ++i) ASSERT_EQ(probe[i], model[offset + i]);
      }
      ring.Consume(n);
      model.erase(model.begin(), model.begin() + n);
    }
    ASSERT_EQ(ring.size(), model.size());
    if (step % 97 == 0) {
      ASSERT_EQ(ReadAll(ring), std::vector<uint8_t>(model.begin(), model.end()));
    }
  }
  EXPECT_LE(ring.capacity(), ring.capacity_max());
}

}  // namespace
}  // namespace blizzard::transport::tcp
