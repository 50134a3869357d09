#include "node/physical_entry.h"

#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace blizzard::node {
namespace {

constexpr uint64_t kArenaBytes = 1u << 20;

absl::Span<const uint8_t> Span(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

structures::WriteSet Sample() {
  structures::WriteSet ws;
  ws.arena_bytes = kArenaBytes;
  ws.ranges.push_back({520, std::string("\x01\x02", 2), ""});
  ws.ranges.push_back({4096, "abc", ""});
  return ws;
}

TEST(PhysicalEntryTest, GoldenRoundTripAndRejections) {
  const std::string e = EncodePhysicalEntry(3, Sample());
  // version 1, 3 ops, then the write set (version 1, arena 2^20, 2 ranges:
  // gap 520 len 2, gap 4096-522 len 3).
  EXPECT_EQ(e, std::string("\x01\x03"
                           "\x01\x80\x80\x40\x02"
                           "\x88\x04\x02\x01\x02"
                           "\xf6\x1b\x03"
                           "abc",
                           18));
  auto d = DecodePhysicalEntry(Span(e), kArenaBytes);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->ops, 3u);
  EXPECT_EQ(d->write_set, Sample());

  for (size_t n = 0; n < e.size(); ++n) {
    EXPECT_TRUE(absl::IsInvalidArgument(
        DecodePhysicalEntry(Span(e.substr(0, n)), kArenaBytes).status()))
        << n;
  }
  EXPECT_FALSE(DecodePhysicalEntry(Span(e + std::string(1, '\0')), kArenaBytes).ok());
  auto other = DecodePhysicalEntry(Span(e), kArenaBytes * 2);
  EXPECT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("arena"), absl::string_view::npos) << other.status();
  std::string v = e;
  v[0] = 9;
  EXPECT_NE(DecodePhysicalEntry(Span(v), kArenaBytes).status().message().find("version 9"),
            absl::string_view::npos);
  std::string many("\x01\xff\xff\xff\x7f", 5);  // 2^28 - 1 ops.
  many += e.substr(2);
  EXPECT_FALSE(DecodePhysicalEntry(Span(many), kArenaBytes).ok());
}

// Untrusted input: random mutations never crash, and whatever is accepted
// re-encodes to the same bytes (one encoding per entry).
TEST(PhysicalEntryTest, MutationsRefusedOrCanonical) {
  const uint64_t seed = 0xfee1;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  std::mt19937_64 rng(seed);
  const std::string e = EncodePhysicalEntry(3, Sample());
  for (int k = 0; k < 20000; ++k) {
    std::string m = e;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int j = 0; j < edits; ++j) {
      switch (rng() % 3) {
        case 0:
          m[rng() % m.size()] = static_cast<char>(rng());
          break;
        case 1:
          m.insert(m.begin() + static_cast<long>(rng() % (m.size() + 1)),
                   static_cast<char>(rng()));
          break;
        default:
          if (m.size() > 1) m.erase(m.begin() + static_cast<long>(rng() % m.size()));
      }
    }
    auto d = DecodePhysicalEntry(Span(m), kArenaBytes);
    if (d.ok()) {
      EXPECT_EQ(EncodePhysicalEntry(d->ops, d->write_set), m) << "k=" << k;
    }
  }
}

}  // namespace
}  // namespace blizzard::node
