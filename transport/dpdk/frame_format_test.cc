#include "transport/dpdk/frame_format.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "transport/dpdk/test_frames.h"

namespace blizzard::transport::dpdk {
namespace {

constexpr size_t kBlz = kEthernetHeaderBytes + kIpv4HeaderBytes + kUdpHeaderBytes;

Addressing TestAddressing() {
  Addressing a;
  a.src_mac = *ParseMac("02:00:00:00:00:01");
  a.dst_mac = *ParseMac("02:00:00:00:00:02");
  a.src_ip = 0x0a000001;
  a.dst_ip = 0x0a000002;
  a.src_port = 7400;
  a.dst_port = 7401;
  return a;
}

FrameHeader MessagesHeader() {
  FrameHeader h;
  h.kind = kKindMessages;
  h.flags = kFlagAck | kFlagNack;
  h.cluster_id = 7;
  h.src_node = 1;
  h.dst_node = 2;
  h.src_epoch = 0x1122334455667788;
  h.ack_epoch = 99;
  h.ack_seq = 12;
  h.seq = 40;
  h.base_seq = 30;
  h.message_id = 1000;
  h.fragment_count = 1;
  h.message_count = 2;
  return h;
}

// A frame with two records: "abc" and "".
std::vector<uint8_t> Encode(FrameHeader h, const Addressing& a = TestAddressing()) {
  return testing::SealFrame(a, h, testing::Records({{'a', 'b', 'c'}, {}}));
}

DecodeResult Decode(const std::vector<uint8_t>& frame, DecodedFrame* out) {
  return DecodeFrame(frame, TestAddressing().dst_mac, 7401, out);
}

TEST(FrameFormatTest, LayoutConstants) {
  EXPECT_EQ(kFrameHeadersBytes, 146u);
  EXPECT_EQ(PayloadBytesMax(1500), 1368u);
  EXPECT_EQ(PayloadBytesMax(9000), 8868u);
}

TEST(FrameFormatTest, RoundTripsEveryField) {
  const FrameHeader h = MessagesHeader();
  const std::vector<uint8_t> frame = Encode(h);
  DecodedFrame d;
  ASSERT_EQ(Decode(frame, &d), DecodeResult::kOk);
  FrameHeader want = h;
  want.payload_bytes = 11;
  EXPECT_EQ(d.header, want) << HeaderDebugString(d.header);
  EXPECT_EQ(d.addressing.src_mac, TestAddressing().src_mac);
  EXPECT_EQ(d.addressing.src_ip, 0x0a000001u);
  EXPECT_EQ(d.addressing.dst_ip, 0x0a000002u);
  EXPECT_EQ(d.addressing.src_port, 7400);
  EXPECT_EQ(d.payload.size(), 11u);
  EXPECT_EQ(d.payload[4], 'a');
}

TEST(FrameFormatTest, HeadersAreWhatOrdinaryNetworksExpect) {
  const std::vector<uint8_t> frame = Encode(MessagesHeader());
  EXPECT_EQ(frame[12], 0x08);  // EtherType IPv4.
  EXPECT_EQ(frame[13], 0x00);
  EXPECT_EQ(frame[14], 0x45);  // IPv4, no options.
  EXPECT_EQ(frame[14 + 9], 17);  // UDP.
  EXPECT_EQ((frame[16] << 8) | frame[17], frame.size() - 14);  // IP length.
  EXPECT_EQ((frame[14 + 20 + 2] << 8) | frame[14 + 20 + 3], 7401);
  EXPECT_EQ(std::memcmp(&frame[kBlz], "BLZD", 4), 0);  // Magic bytes.
}

TEST(FrameFormatTest, EveryCoveredByteIsChecked) {
  const std::vector<uint8_t> good = Encode(MessagesHeader());
  for (size_t i = 0; i < good.size(); ++i) {
    // Not covered by design: the source MAC (the engine compares it with
    // the peer's), the UDP source port and checksum (informational; XXH3
    // covers everything of ours).
    if ((i >= 6 && i < 12) || (i >= 34 && i < 36) || (i >= 40 && i < 42)) {
      continue;
    }
    for (uint8_t bit : {uint8_t{1}, uint8_t{0x80}}) {
      std::vector<uint8_t> bad = good;
      bad[i] ^= bit;
      DecodedFrame d;
      EXPECT_NE(Decode(bad, &d), DecodeResult::kOk)
          << "byte " << i << " bit " << int{bit} << " went unnoticed";
    }
  }
}

TEST(FrameFormatTest, EthernetPaddingIsAccepted) {
  FrameHeader h = MessagesHeader();
  std::vector<uint8_t> frame = Encode(h);
  frame.resize(frame.size() + 20, 0);
  DecodedFrame d;
  ASSERT_EQ(Decode(frame, &d), DecodeResult::kOk);
  EXPECT_EQ(d.payload.size(), 11u);
}

TEST(FrameFormatTest, ClassifiesWhatIsNotOurs) {
  DecodedFrame d;
  std::vector<uint8_t> frame = Encode(MessagesHeader());
  EXPECT_EQ(DecodeFrame(frame, *ParseMac("02:00:00:00:00:09"), 7401, &d),
            DecodeResult::kNotOurs);  // Another MAC.
  EXPECT_EQ(DecodeFrame(frame, TestAddressing().dst_mac, 7402, &d),
            DecodeResult::kNotOurs);  // Another port.
  std::vector<uint8_t> runt(frame.begin(), frame.begin() + 40);
  EXPECT_EQ(Decode(runt, &d), DecodeResult::kNotOurs);
  std::vector<uint8_t> fragment = frame;
  fragment[14 + 6] |= 0x20;  // IP "more fragments".
  ResealFrame(absl::MakeSpan(fragment));
  EXPECT_EQ(Decode(fragment, &d), DecodeResult::kNotOurs);
  std::vector<uint8_t> options = frame;
  options[14] = 0x46;  // An IP header with options.
  EXPECT_EQ(Decode(options, &d), DecodeResult::kNotOurs);
}

TEST(FrameFormatTest, RejectsInconsistentFields) {
  // Each edit is resealed, so only the field rules can catch it.
  struct Case {
    const char* what;
    size_t offset;  // In the Blizzard header.
    std::vector<uint8_t> bytes;
    DecodeResult want;
  };
  const std::vector<Case> cases = {
      {"bad magic", 0, {'X'}, DecodeResult::kMalformed},
      {"version 2", 4, {2}, DecodeResult::kBadVersion},
      {"unknown kind", 5, {9}, DecodeResult::kMalformed},
      {"unknown flag", 6, {4}, DecodeResult::kMalformed},
      {"nack without ack", 6, {2}, DecodeResult::kMalformed},
      {"no ack flag but ack fields", 6, {0}, DecodeResult::kMalformed},
      {"epoch 0", 40, {0, 0, 0, 0, 0, 0, 0, 0}, DecodeResult::kMalformed},
      {"base after seq", 72, {41}, DecodeResult::kMalformed},
      {"messages frame with message_bytes", 88, {1}, DecodeResult::kMalformed},
      {"messages frame with a fragment index", 92, {1},
       DecodeResult::kMalformed},
      {"no messages", 100, {0, 0}, DecodeResult::kMalformed},
      {"more records than bytes", 100, {3, 0}, DecodeResult::kMalformed},
      {"payload_bytes beyond the frame", 102, {12, 0},
       DecodeResult::kMalformed},
  };
  for (const Case& c : cases) {
    std::vector<uint8_t> frame = Encode(MessagesHeader());
    std::memcpy(&frame[kBlz + c.offset], c.bytes.data(), c.bytes.size());
    if (c.offset != 102) ResealFrame(absl::MakeSpan(frame));
    DecodedFrame d;
    EXPECT_EQ(Decode(frame, &d), c.want) << c.what;
  }
}

TEST(FrameFormatTest, FragmentAndAckRules) {
  FrameHeader f = MessagesHeader();
  f.kind = kKindFragment;
  f.message_count = 1;
  f.message_bytes = 5000;
  f.fragment_index = 3;
  f.fragment_count = 4;
  DecodedFrame d;
  EXPECT_EQ(Decode(Encode(f), &d), DecodeResult::kOk);
  EXPECT_EQ(d.header.fragment_index, 3u);

  std::vector<uint8_t> frame = Encode(f);
  frame[kBlz + 92] = 4;  // Index == count.
  ResealFrame(absl::MakeSpan(frame));
  EXPECT_EQ(Decode(frame, &d), DecodeResult::kMalformed);
  frame = Encode(f);
  frame[kBlz + 88] = 5;  // message_bytes 5 < payload 11.
  frame[kBlz + 89] = 0;
  ResealFrame(absl::MakeSpan(frame));
  EXPECT_EQ(Decode(frame, &d), DecodeResult::kMalformed);

  FrameHeader ack;
  ack.kind = kKindAck;
  ack.flags = kFlagAck;
  ack.cluster_id = 7;
  ack.src_node = 1;
  ack.dst_node = 2;
  ack.src_epoch = 5;
  ack.ack_epoch = 6;
  ack.ack_seq = 7;
  std::vector<uint8_t> ack_frame(kFrameHeadersBytes);
  FinishFrame(TestAddressing(), ack, absl::MakeSpan(ack_frame));
  ASSERT_EQ(Decode(ack_frame, &d), DecodeResult::kOk);
  EXPECT_EQ(d.header, ack);
  ack_frame[kBlz + 64] = 1;  // An ack with a sequence number.
  ResealFrame(absl::MakeSpan(ack_frame));
  EXPECT_EQ(Decode(ack_frame, &d), DecodeResult::kMalformed);
}

TEST(FrameFormatTest, ParsesMacAddresses) {
  EXPECT_EQ(FormatMac(*ParseMac("02:AB:cd:00:10:ff")), "02:ab:cd:00:10:ff");
  for (const char* bad :
       {"", "02:00:00:00:00", "02:00:00:00:00:0g", "02-00-00-00-00-01",
        "02:00:00:00:00:001", "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff",
        "00:00:00:00:00:00"}) {
    EXPECT_FALSE(ParseMac(bad).ok()) << bad;
  }
}

TEST(FrameFormatTest, ParsesIpv4Only) {
  EXPECT_EQ(*ParseIpv4("10.1.2.3"), 0x0a010203u);
  EXPECT_EQ(*ParseIpv4("0.0.0.0"), 0u);
  EXPECT_FALSE(ParseIpv4("localhost").ok());
  EXPECT_FALSE(ParseIpv4("10.1.2").ok());
  EXPECT_FALSE(ParseIpv4("::1").ok());
}

}  // namespace
}  // namespace blizzard::transport::dpdk
