#include "transport/dpdk/frame_format.h"

#include <arpa/inet.h>
#include <xxhash.h>

#include <bit>
#include <cstring>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"

namespace blizzard::transport::dpdk {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the Blizzard header is stored with plain memcpy");

// Offsets inside the Blizzard header (FORMAT.md).
constexpr size_t kOffMagic = 0;
constexpr size_t kOffVersion = 4;
constexpr size_t kOffKind = 5;
constexpr size_t kOffFlags = 6;
constexpr size_t kOffChecksum = 8;
constexpr size_t kOffClusterId = 16;
constexpr size_t kOffSrcNode = 24;
constexpr size_t kOffDstNode = 32;
constexpr size_t kOffSrcEpoch = 40;
constexpr size_t kOffAckEpoch = 48;
constexpr size_t kOffAckSeq = 56;
constexpr size_t kOffSeq = 64;
constexpr size_t kOffBaseSeq = 72;
constexpr size_t kOffMessageId = 80;
constexpr size_t kOffMessageBytes = 88;
constexpr size_t kOffFragmentIndex = 92;
constexpr size_t kOffFragmentCount = 96;
constexpr size_t kOffMessageCount = 100;
constexpr size_t kOffPayloadBytes = 102;
static_assert(kOffPayloadBytes + 2 == kBlizzardHeaderBytes);

constexpr size_t kIpOffset = kEthernetHeaderBytes;
constexpr size_t kUdpOffset = kIpOffset + kIpv4HeaderBytes;
constexpr size_t kBlzOffset = kUdpOffset + kUdpHeaderBytes;
static_assert(kBlzOffset + kBlizzardHeaderBytes == kFrameHeadersBytes);

template <typename T>
void Store(uint8_t* at, T value) {
  std::memcpy(at, &value, sizeof(value));
}

template <typename T>
T Load(const uint8_t* at) {
  T value;
  std::memcpy(&value, at, sizeof(value));
  return value;
}

void StoreBe16(uint8_t* at, uint16_t value) { Store<uint16_t>(at, htons(value)); }
void StoreBe32(uint8_t* at, uint32_t value) { Store<uint32_t>(at, htonl(value)); }
uint16_t LoadBe16(const uint8_t* at) { return ntohs(Load<uint16_t>(at)); }
uint32_t LoadBe32(const uint8_t* at) { return ntohl(Load<uint32_t>(at)); }

// RFC 1071 one's-complement sum over the 20-byte IPv4 header.
uint16_t Ipv4Checksum(const uint8_t* ip) {
  uint32_t sum = 0;
  for (size_t i = 0; i < kIpv4HeaderBytes; i += 2) sum += LoadBe16(ip + i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Covers the Blizzard header from offset 16 and the payload; the first eight
// bytes (magic, version, kind, flags) are bound in as the seed, like the TCP
// format does with its length and kind.
uint64_t BlizzardChecksum(const uint8_t* blz, size_t payload_bytes) {
  return XXH3_64bits_withSeed(blz + kOffClusterId,
                              kBlizzardHeaderBytes - kOffClusterId +
                                  payload_bytes,
                              Load<uint64_t>(blz));
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Field rules that need no context (FORMAT.md, "Validation").
bool HeaderFieldsValid(const FrameHeader& h) {
  if ((h.flags & ~kFlagsKnown) != 0) return false;
  if ((h.flags & kFlagNack) && !(h.flags & kFlagAck)) return false;
  if (h.src_epoch == 0) return false;
  if (!(h.flags & kFlagAck) && (h.ack_epoch != 0 || h.ack_seq != 0)) {
    return false;
  }
  if (h.kind == kKindAck) {
    return (h.flags & kFlagAck) && h.payload_bytes == 0 && h.seq == 0 &&
           h.base_seq == 0 && h.message_id == 0 && h.message_bytes == 0 &&
           h.fragment_index == 0 && h.fragment_count == 0 &&
           h.message_count == 0;
  }
  if (!IsData(h.kind) || h.base_seq > h.seq) return false;
  if (h.kind == kKindMessages) {
    // message_count whole messages, each with a 4-byte prefix.
    return h.fragment_index == 0 && h.fragment_count == 1 &&
           h.message_bytes == 0 && h.message_count >= 1 &&
           h.payload_bytes >= h.message_count * kRecordPrefixBytes;
  }
  // One non-empty piece of one message.
  return h.fragment_count >= 1 && h.fragment_index < h.fragment_count &&
         h.message_count == 1 && h.payload_bytes >= 1 &&
         h.message_bytes >= h.payload_bytes;
}

}  // namespace

std::string HeaderDebugString(const FrameHeader& h) {
  return absl::StrFormat(
      "kind=%d flags=%d cluster=%d %d->%d epoch=%d ack=%d@%d seq=%d base=%d "
      "message=%d bytes=%d fragment=%d/%d messages=%d payload=%d",
      h.kind, h.flags, h.cluster_id, h.src_node, h.dst_node, h.src_epoch,
      h.ack_seq, h.ack_epoch, h.seq, h.base_seq, h.message_id,
      h.message_bytes, h.fragment_index, h.fragment_count, h.message_count,
      h.payload_bytes);
}

absl::StatusOr<MacAddress> ParseMac(const std::string& text) {
  MacAddress mac{};
  if (text.size() != 17) {
    return absl::InvalidArgumentError(
        absl::StrFormat("MAC '%s' is not aa:bb:cc:dd:ee:ff", text));
  }
  for (size_t i = 0; i < 6; ++i) {
    int hi = HexDigit(text[i * 3]);
    int lo = HexDigit(text[i * 3 + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && text[i * 3 + 2] != ':')) {
      return absl::InvalidArgumentError(
          absl::StrFormat("MAC '%s' is not aa:bb:cc:dd:ee:ff", text));
    }
    mac[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  if (mac[0] & 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "MAC '%s' is multicast or broadcast, not a station address", text));
  }
  if (mac == MacAddress{}) {
    return absl::InvalidArgumentError("MAC 00:00:00:00:00:00 is not valid");
  }
  return mac;
}

std::string FormatMac(const MacAddress& mac) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
                         mac[2], mac[3], mac[4], mac[5]);
}

absl::StatusOr<uint32_t> ParseIpv4(const std::string& text) {
  in_addr addr{};
  if (inet_pton(AF_INET, text.c_str(), &addr) != 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "'%s' is not an IPv4 address (the DPDK transport has no resolver)",
        text));
  }
  return ntohl(addr.s_addr);
}

size_t FinishFrame(const Addressing& a, const FrameHeader& h,
                   absl::Span<uint8_t> frame) {
  const size_t frame_bytes = kFrameHeadersBytes + h.payload_bytes;
  ABSL_RAW_CHECK(frame.size() >= frame_bytes, "frame buffer too small");
  if (!HeaderFieldsValid(h)) {
    ABSL_RAW_LOG(FATAL, "encoding an invalid header: %s",
                 HeaderDebugString(h).c_str());
  }
  uint8_t* p = frame.data();

  std::memcpy(p, a.dst_mac.data(), 6);
  std::memcpy(p + 6, a.src_mac.data(), 6);
  StoreBe16(p + 12, kEtherTypeIpv4);

  uint8_t* ip = p + kIpOffset;
  ip[0] = 0x45;  // Version 4, 5 words of header.
  ip[1] = 0;     // DSCP/ECN.
  StoreBe16(ip + 2, static_cast<uint16_t>(frame_bytes - kIpOffset));
  StoreBe16(ip + 4, 0);       // Identification: unused, never fragmented.
  StoreBe16(ip + 6, 0x4000);  // Don't fragment.
  ip[8] = 64;                 // TTL.
  ip[9] = kIpProtocolUdp;
  StoreBe16(ip + 10, 0);
  StoreBe32(ip + 12, a.src_ip);
  StoreBe32(ip + 16, a.dst_ip);
  StoreBe16(ip + 10, Ipv4Checksum(ip));

  uint8_t* udp = p + kUdpOffset;
  StoreBe16(udp, a.src_port);
  StoreBe16(udp + 2, a.dst_port);
  StoreBe16(udp + 4, static_cast<uint16_t>(frame_bytes - kUdpOffset));
  StoreBe16(udp + 6, 0);  // No UDP checksum (allowed in IPv4): XXH3 covers.

  uint8_t* blz = p + kBlzOffset;
  Store<uint32_t>(blz + kOffMagic, kMagic);
  blz[kOffVersion] = kFormatVersion;
  blz[kOffKind] = h.kind;
  Store<uint16_t>(blz + kOffFlags, h.flags);
  Store<uint64_t>(blz + kOffClusterId, h.cluster_id);
  Store<uint64_t>(blz + kOffSrcNode, h.src_node);
  Store<uint64_t>(blz + kOffDstNode, h.dst_node);
  Store<uint64_t>(blz + kOffSrcEpoch, h.src_epoch);
  Store<uint64_t>(blz + kOffAckEpoch, h.ack_epoch);
  Store<uint64_t>(blz + kOffAckSeq, h.ack_seq);
  Store<uint64_t>(blz + kOffSeq, h.seq);
  Store<uint64_t>(blz + kOffBaseSeq, h.base_seq);
  Store<uint64_t>(blz + kOffMessageId, h.message_id);
  Store<uint32_t>(blz + kOffMessageBytes, h.message_bytes);
  Store<uint32_t>(blz + kOffFragmentIndex, h.fragment_index);
  Store<uint32_t>(blz + kOffFragmentCount, h.fragment_count);
  Store<uint16_t>(blz + kOffMessageCount, h.message_count);
  Store<uint16_t>(blz + kOffPayloadBytes, h.payload_bytes);
  Store<uint64_t>(blz + kOffChecksum, BlizzardChecksum(blz, h.payload_bytes));
  return frame_bytes;
}

void ResealFrame(absl::Span<uint8_t> frame) {
  ABSL_RAW_CHECK(frame.size() >= kFrameHeadersBytes, "frame too short");
  uint8_t* ip = frame.data() + kIpOffset;
  StoreBe16(ip + 10, 0);
  StoreBe16(ip + 10, Ipv4Checksum(ip));
  uint8_t* blz = frame.data() + kBlzOffset;
  const uint16_t payload_bytes = Load<uint16_t>(blz + kOffPayloadBytes);
  ABSL_RAW_CHECK(kFrameHeadersBytes + payload_bytes <= frame.size(),
                 "payload_bytes beyond the frame");
  Store<uint64_t>(blz + kOffChecksum, BlizzardChecksum(blz, payload_bytes));
}

DecodeResult DecodeFrame(absl::Span<const uint8_t> frame,
                         const MacAddress& self_mac, uint16_t udp_port,
                         DecodedFrame* out) {
  const uint8_t* p = frame.data();
  // Everything below the UDP port decides "ours or not"; a frame that is not
  // ours is never an error (other traffic shares the link).
  if (frame.size() < kUdpOffset + kUdpHeaderBytes) return DecodeResult::kNotOurs;
  if (std::memcmp(p, self_mac.data(), 6) != 0) return DecodeResult::kNotOurs;
  if (LoadBe16(p + 12) != kEtherTypeIpv4) return DecodeResult::kNotOurs;
  const uint8_t* ip = p + kIpOffset;
  if (ip[0] != 0x45 || ip[9] != kIpProtocolUdp) return DecodeResult::kNotOurs;
  if ((LoadBe16(ip + 6) & 0x3fff) != 0) return DecodeResult::kNotOurs;  // MF/offset.
  const uint8_t* udp = p + kUdpOffset;
  if (LoadBe16(udp + 2) != udp_port) return DecodeResult::kNotOurs;

  // Addressed to us: from here on, damage is counted.
  const size_t ip_bytes = LoadBe16(ip + 2);
  if (ip_bytes < kMtuOverheadBytes || ip_bytes > frame.size() - kIpOffset) {
    return DecodeResult::kMalformed;  // Ethernet may pad, never truncate.
  }
  if (Ipv4Checksum(ip) != 0) return DecodeResult::kBadChecksum;
  if (LoadBe16(udp + 4) != ip_bytes - kIpv4HeaderBytes) {
    return DecodeResult::kMalformed;
  }
  const uint8_t* blz = p + kBlzOffset;
  if (Load<uint32_t>(blz + kOffMagic) != kMagic) return DecodeResult::kMalformed;
  if (blz[kOffVersion] != kFormatVersion) return DecodeResult::kBadVersion;

  FrameHeader& h = out->header;
  h.payload_bytes = Load<uint16_t>(blz + kOffPayloadBytes);
  if (kMtuOverheadBytes + h.payload_bytes != ip_bytes) {
    return DecodeResult::kMalformed;
  }
  if (Load<uint64_t>(blz + kOffChecksum) !=
      BlizzardChecksum(blz, h.payload_bytes)) {
    return DecodeResult::kBadChecksum;
  }
  h.kind = blz[kOffKind];
  h.flags = Load<uint16_t>(blz + kOffFlags);
  h.cluster_id = Load<uint64_t>(blz + kOffClusterId);
  h.src_node = Load<uint64_t>(blz + kOffSrcNode);
  h.dst_node = Load<uint64_t>(blz + kOffDstNode);
  h.src_epoch = Load<uint64_t>(blz + kOffSrcEpoch);
  h.ack_epoch = Load<uint64_t>(blz + kOffAckEpoch);
  h.ack_seq = Load<uint64_t>(blz + kOffAckSeq);
  h.seq = Load<uint64_t>(blz + kOffSeq);
  h.base_seq = Load<uint64_t>(blz + kOffBaseSeq);
  h.message_id = Load<uint64_t>(blz + kOffMessageId);
  h.message_bytes = Load<uint32_t>(blz + kOffMessageBytes);
  h.fragment_index = Load<uint32_t>(blz + kOffFragmentIndex);
  h.fragment_count = Load<uint32_t>(blz + kOffFragmentCount);
  h.message_count = Load<uint16_t>(blz + kOffMessageCount);
  if (!HeaderFieldsValid(h)) return DecodeResult::kMalformed;

  Addressing& a = out->addressing;
  std::memcpy(a.dst_mac.data(), p, 6);
  std::memcpy(a.src_mac.data(), p + 6, 6);
  a.src_ip = LoadBe32(ip + 12);
  a.dst_ip = LoadBe32(ip + 16);
  a.src_port = LoadBe16(udp);
  a.dst_port = LoadBe16(udp + 2);
  out->payload = frame.subspan(kFrameHeadersBytes, h.payload_bytes);
  return DecodeResult::kOk;
}

}  // namespace blizzard::transport::dpdk
