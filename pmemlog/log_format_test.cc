#include "pmemlog/log_format.h"

#include <xxhash.h>

#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace blizzard::pmemlog::format {
namespace {

TEST(LogFormatTest, MagicSpellsItsName) {
  char text[9] = {};
  std::memcpy(text, &kMagic, 8);
  EXPECT_STREQ(text, "BLZLOG01");
}

TEST(LogFormatTest, RecordBytesPadsPayloadToEightBytes) {
  EXPECT_EQ(RecordBytes(0), 32u);
  EXPECT_EQ(RecordBytes(1), 40u);
  EXPECT_EQ(RecordBytes(8), 40u);
  EXPECT_EQ(RecordBytes(9), 48u);
}

TEST(LogFormatTest, TailWordRoundTripsAndRejectsEverySingleBitFlip) {
  const uint64_t ring_bytes = 1ull << 30;
  for (uint64_t tail : {0ull, 8ull, 4096ull, (1ull << 30) - 8}) {
    const uint64_t word = EncodeTail(tail);
    ASSERT_EQ(DecodeTail(word, ring_bytes), tail);
    for (int bit = 0; bit < 64; ++bit) {
      EXPECT_FALSE(DecodeTail(word ^ (1ull << bit), ring_bytes).has_value())
          << "tail " << tail << " bit " << bit;
    }
  }
}

TEST(LogFormatTest, TailWordBeyondTheRingIsRejected) {
  EXPECT_FALSE(DecodeTail(EncodeTail(4096), 4096).has_value());
  EXPECT_TRUE(DecodeTail(EncodeTail(4088), 4096).has_value());
}

TEST(LogFormatTest, HeaderAndSlotChecksumsCoverEveryFieldAndDiffer) {
  Header h{};
  h.magic = kMagic;
  h.ring_bytes = 4096;
  const uint64_t sum = HeaderChecksum(h);
  for (size_t byte = 0; byte < offsetof(Header, checksum); ++byte) {
    Header damaged = h;
    reinterpret_cast<uint8_t*>(&damaged)[byte] ^= 1;
    EXPECT_NE(HeaderChecksum(damaged), sum) << "byte " << byte;
  }
  // The same bytes as a slot do not verify: per-structure seeds.
  StateSlot s;
  static_assert(sizeof(s) == sizeof(h));
  std::memcpy(&s, &h, sizeof(s));
  EXPECT_NE(SlotChecksum(s), sum);
}

TEST(LogFormatTest, RecordChecksumBindsHeaderPayloadAndPosition) {
  RecordHeader h{};
  h.index = 5;
  h.term = 2;
  h.payload_bytes = 3;
  const uint8_t payload[3] = {1, 2, 3};
  const uint64_t sum = RecordChecksum(h, 64, payload);
  EXPECT_NE(RecordChecksum(h, 64 + 4096, payload), sum);  // Another lap.
  RecordHeader other = h;
  other.term = 3;
  EXPECT_NE(RecordChecksum(other, 64, payload), sum);
  const uint8_t changed[3] = {1, 2, 4};
  EXPECT_NE(RecordChecksum(h, 64, changed), sum);
  other = h;
  other.checksum = 12345;  // The checksum field itself is not covered.
  EXPECT_EQ(RecordChecksum(other, 64, payload), sum);
}

// The record checksum is the format's definition (FORMAT.md 3.1), computed
// with the plain XXH3 entry points, whichever vector unit the implementation
// dispatches to and whether it hashes inline: every payload length around
// the short/medium/long paths of XXH3, and around the vector block sizes.
// The writer's form (from fields and the payload hash) agrees.
TEST(LogFormatTest, RecordChecksumIsXxh3OfHeaderAndPlainPayloadHash) {
  std::mt19937_64 rng(5);
  std::vector<uint8_t> payload(5000);
  for (uint8_t& b : payload) b = static_cast<uint8_t>(rng());
  for (size_t len = 0; len <= payload.size(); len += (len < 300 ? 1 : 37)) {
    RecordHeader h{};
    h.index = rng();
    h.term = rng();
    h.payload_bytes = static_cast<uint32_t>(len);
    h.type = static_cast<uint8_t>(rng());
    const uint64_t offset = rng() & ~7ull;
    uint8_t words[32];
    std::memcpy(words, &h, 24);
    const uint64_t payload_hash = XXH3_64bits(payload.data(), len);
    std::memcpy(words + 24, &payload_hash, 8);
    const uint64_t expected = XXH3_64bits_withSeed(words, sizeof(words), offset ^ kRecordSeed);
    const absl::Span<const uint8_t> span = absl::MakeConstSpan(payload.data(), len);
    ASSERT_EQ(RecordPayloadHash(span), payload_hash) << len;
    ASSERT_EQ(RecordChecksum(h, offset, span), expected) << len;
    ASSERT_EQ(RecordChecksumOf(h.index, h.term, h.payload_bytes, h.type, offset, payload_hash),
              expected)
        << len;
  }
}

TEST(LogFormatTest, RecordChecksumCoversReservedBytes) {
  RecordHeader h{};
  h.index = 9;
  h.term = 4;
  h.payload_bytes = 0;
  const uint64_t sum = RecordChecksum(h, 128, {});
  for (int i = 0; i < 3; ++i) {
    RecordHeader damaged = h;
    damaged.reserved[i] = 1;
    EXPECT_NE(RecordChecksum(damaged, 128, {}), sum) << i;
  }
}

}  // namespace
}  // namespace blizzard::pmemlog::format
