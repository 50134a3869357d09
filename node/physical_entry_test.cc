#include "node/physical_entry.h"

#include <random>
#include <string>
#include <vector>

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

// Version 2: the session clients between the op count and the write set.
// An entry without session clients is still version 1 (one encoding per
// entry); a version 2 section that is empty, unsorted, repeats or names
// client 0 is refused.
TEST(PhysicalEntryTest, SessionClientsGoldenAndRejections) {
  const std::vector<uint64_t> clients = {7, 0x0102030405060708ull};
  const std::string e = EncodePhysicalEntry(3, clients, Sample());
  const std::string ws = structures::EncodeWriteSet(Sample());
  EXPECT_EQ(e, std::string("\x02\x03\x02"
                           "\x07\0\0\0\0\0\0\0"
                           "\x08\x07\x06\x05\x04\x03\x02\x01",
                           19) + ws);
  auto d = DecodePhysicalEntry(Span(e), kArenaBytes);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->ops, 3u);
  EXPECT_EQ(d->session_clients, clients);
  EXPECT_EQ(d->write_set, Sample());
  EXPECT_EQ(EncodePhysicalEntry(3, {}, Sample()), EncodePhysicalEntry(3, Sample()));
  EXPECT_EQ(EncodePhysicalEntry(3, {}, Sample())[0], '\x01');
  auto v1 = DecodePhysicalEntry(Span(EncodePhysicalEntry(3, Sample())), kArenaBytes);
  ASSERT_TRUE(v1.ok());
  EXPECT_TRUE(v1->session_clients.empty());

  for (size_t n = 0; n < e.size(); ++n) {
    EXPECT_TRUE(absl::IsInvalidArgument(
        DecodePhysicalEntry(Span(e.substr(0, n)), kArenaBytes).status()))
        << n;
  }
  auto client = [](uint64_t c) {
    std::string out;
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((c >> (8 * i)) & 0xff));
    return out;
  };
  const std::string head("\x02\x03", 2);
  const char* bad[] = {"empty", "unsorted", "repeated", "zero", "count above the limit"};
  const std::string cases[] = {
      head + std::string("\x00", 1) + ws,
      head + "\x02" + client(9) + client(8) + ws,
      head + "\x02" + client(9) + client(9) + ws,
      head + "\x01" + client(0) + ws,
      head + std::string("\x81\x80\x40", 3) + ws,  // 2^20 + 1
  };
  for (size_t i = 0; i < 5; ++i) {
    auto r = DecodePhysicalEntry(Span(cases[i]), kArenaBytes);
    EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << bad[i] << ": " << r.status();
  }
}

// Untrusted input: random mutations never crash, and whatever is accepted
// re-encodes to the same bytes (one encoding per entry).
TEST(PhysicalEntryTest, MutationsRefusedOrCanonical) {
  const uint64_t seed = 0xfee1;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  std::mt19937_64 rng(seed);
  const std::string v1 = EncodePhysicalEntry(3, Sample());
  const std::string v2 = EncodePhysicalEntry(3, {5, 1u << 20}, Sample());
  for (int k = 0; k < 20000; ++k) {
    std::string m = k % 2 == 0 ? v1 : v2;
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
      EXPECT_EQ(EncodePhysicalEntry(d->ops, d->session_clients, d->write_set), m) << "k=" << k;
    }
  }
}

}  // namespace
}  // namespace blizzard::node
