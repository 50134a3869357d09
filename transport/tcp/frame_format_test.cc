#include "transport/tcp/frame_format.h"

#include <vector>

#include "gtest/gtest.h"

namespace blizzard::transport::tcp {
namespace {

TEST(FrameFormatTest, HelloRoundTrips) {
  HelloBytes bytes = EncodeHello(0x1122334455667788ull, 42);
  EXPECT_EQ(bytes[0], 'B');
  EXPECT_EQ(bytes[3], 'T');
  auto hello = DecodeHello(bytes);
  ASSERT_TRUE(hello.ok()) << hello.status();
  EXPECT_EQ(hello->version, kFormatVersion);
  EXPECT_EQ(hello->cluster_id, 0x1122334455667788ull);
  EXPECT_EQ(hello->node_id, 42u);
}

TEST(FrameFormatTest, EveryFlippedHelloBitIsCaught) {
  const HelloBytes good = EncodeHello(7, 3);
  for (size_t byte = 0; byte < kHelloBytes; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      HelloBytes bad = good;
      bad[byte] ^= static_cast<uint8_t>(1u << bit);
      EXPECT_FALSE(DecodeHello(bad).ok()) << "byte " << byte << " bit " << bit;
    }
  }
}

TEST(FrameFormatTest, FrameHeaderRoundTripsAndChecksThePayload) {
  std::vector<uint8_t> payload(1000);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = i * 7;
  FrameHeaderBytes bytes = EncodeFrameHeader(payload);
  FrameHeader header = DecodeFrameHeader(bytes);
  EXPECT_EQ(header.payload_bytes, 1000u);
  EXPECT_EQ(header.kind, kFrameKindMessage);
  EXPECT_TRUE(PayloadMatches(header, payload));
  payload[500] ^= 1;
  EXPECT_FALSE(PayloadMatches(header, payload));
}

TEST(FrameFormatTest, EmptyPayloadIsAFrame) {
  FrameHeader header = DecodeFrameHeader(EncodeFrameHeader({}));
  EXPECT_EQ(header.payload_bytes, 0u);
  EXPECT_TRUE(PayloadMatches(header, {}));
}

TEST(FrameFormatTest, ChecksumBindsLengthAndKind) {
  std::vector<uint8_t> payload(64, 9);
  FrameHeader header = DecodeFrameHeader(EncodeFrameHeader(payload));
  // Same payload bytes, but read under a shorter length: must not match.
  FrameHeader shorter = header;
  shorter.payload_bytes = 63;
  EXPECT_FALSE(
      PayloadMatches(shorter, absl::MakeConstSpan(payload).first(63)));
  FrameHeader other_kind = header;
  other_kind.kind = 2;
  EXPECT_FALSE(PayloadMatches(other_kind, payload));
}

}  // namespace
}  // namespace blizzard::transport::tcp
