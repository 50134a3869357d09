// Wire format of the DPDK transport: Ethernet II + IPv4 + UDP + a 104-byte
// Blizzard header + payload. transport/dpdk/FORMAT.md is the normative
// description; this file wins over nothing (if they disagree, the code has a
// bug). Pure byte manipulation, no DPDK: the encoder writes into any buffer
// (an mbuf's data in the transport, a vector in tests) and the decoder reads
// any span, so the format is tested without EAL.
//
// Byte order: Ethernet, IPv4 and UDP fields are big-endian (network order,
// as those protocols define); the Blizzard header is little-endian like the
// TCP transport's format.
#ifndef BLIZZARD_TRANSPORT_DPDK_FRAME_FORMAT_H_
#define BLIZZARD_TRANSPORT_DPDK_FRAME_FORMAT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "transport/transport.h"

namespace blizzard::transport::dpdk {

inline constexpr size_t kEthernetHeaderBytes = 14;
inline constexpr size_t kIpv4HeaderBytes = 20;
inline constexpr size_t kUdpHeaderBytes = 8;
inline constexpr size_t kBlizzardHeaderBytes = 104;
// Bytes of headers inside the IP MTU: what a frame's payload loses to them.
inline constexpr size_t kMtuOverheadBytes =
    kIpv4HeaderBytes + kUdpHeaderBytes + kBlizzardHeaderBytes;
// Offset of the payload in a frame.
inline constexpr size_t kFrameHeadersBytes =
    kEthernetHeaderBytes + kMtuOverheadBytes;

// The smallest IP MTU every Ethernet link carries; frames never exceed the
// MTU the transport settled on at start-up (1500, a jumbo size, or what the
// cluster file's mtu_bytes says). payload_bytes (u16) and the IPv4 total
// length bound the largest.
inline constexpr size_t kMtuBytesMin = kLinkMtuBytesMin;
inline constexpr size_t kMtuBytesMax = kLinkMtuBytesMax;

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint8_t kIpProtocolUdp = 17;
inline constexpr uint32_t kMagic = 0x445A4C42;  // "BLZD" on the wire.
inline constexpr uint8_t kFormatVersion = 1;
// UDP port used when TransportOptions leave the port 0.
inline constexpr uint16_t kDefaultUdpPort = 7400;

enum FrameKind : uint8_t {
  kKindMessages = 1,  // Whole messages, each with a u32 length prefix.
  kKindAck = 2,       // Acknowledgement only, no payload.
  kKindFragment = 3,  // One piece of one message too large for a frame.
};

// Messages and fragments are "data": sequenced, acknowledged, resent.
constexpr bool IsData(uint8_t kind) {
  return kind == kKindMessages || kind == kKindFragment;
}

enum FrameFlags : uint16_t {
  kFlagAck = 1,   // ack_epoch / ack_seq are meaningful.
  kFlagNack = 2,  // The receiver saw a gap: resend from ack_seq now.
};
inline constexpr uint16_t kFlagsKnown = kFlagAck | kFlagNack;

// Sequence numbers are u64 and never wrap; a frame's position in its stream.
using Seq = uint64_t;

using MacAddress = std::array<uint8_t, 6>;

// "aa:bb:cc:dd:ee:ff", hex either case. InvalidArgument otherwise, and for
// multicast/broadcast (low bit of the first byte) or all-zero addresses.
absl::StatusOr<MacAddress> ParseMac(const std::string& text);
std::string FormatMac(const MacAddress& mac);

// Dotted quad to a host-order u32. InvalidArgument for anything else (the
// transport has no resolver: cluster files name IPv4 addresses).
absl::StatusOr<uint32_t> ParseIpv4(const std::string& text);

// Who a frame goes from and to, below the Blizzard header.
struct Addressing {
  MacAddress src_mac{};
  MacAddress dst_mac{};
  uint32_t src_ip = 0;  // Host order.
  uint32_t dst_ip = 0;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
};

// The Blizzard header's fields (FORMAT.md explains each).
struct FrameHeader {
  uint8_t kind = kKindMessages;
  uint16_t flags = 0;
  uint64_t cluster_id = 0;
  NodeId src_node = 0;
  NodeId dst_node = 0;
  uint64_t src_epoch = 0;
  uint64_t ack_epoch = 0;
  Seq ack_seq = 0;
  Seq seq = 0;
  Seq base_seq = 0;
  uint64_t message_id = 0;
  uint32_t message_bytes = 0;
  uint32_t fragment_index = 0;
  uint32_t fragment_count = 0;
  uint16_t message_count = 0;
  uint16_t payload_bytes = 0;

  bool operator==(const FrameHeader&) const = default;
};

// For test failures and fatal errors.
std::string HeaderDebugString(const FrameHeader& header);

// Writes every header in front of the payload, which the caller has already
// put at frame[kFrameHeadersBytes, + header.payload_bytes), then the IPv4
// header checksum and the Blizzard checksum. `frame` must hold the whole
// frame. Returns the frame's length.
size_t FinishFrame(const Addressing& addressing, const FrameHeader& header,
                   absl::Span<uint8_t> frame);

// Recomputes the IPv4 header checksum and the Blizzard checksum of a frame
// (whose Blizzard payload_bytes field is right) after its bytes were edited:
// for tests and tools that forge frames the encoder would refuse.
void ResealFrame(absl::Span<uint8_t> frame);

enum class DecodeResult {
  kOk,
  // Not addressed to this transport: another destination MAC, not IPv4/UDP,
  // IP options or fragments (never sent by us), another UDP port. Normal on
  // a shared link (ARP, IPv6 neighbour discovery, other clusters' ports).
  kNotOurs,
  // Addressed to our port but broken: truncated, inconsistent lengths, bad
  // magic, unknown kind or flags, impossible fragment fields.
  kMalformed,
  kBadVersion,   // Our magic but a version this build does not speak.
  kBadChecksum,  // IPv4 header checksum or Blizzard checksum mismatch.
};

struct DecodedFrame {
  Addressing addressing;
  FrameHeader header;
  absl::Span<const uint8_t> payload;  // Points into the decoded span.
};

// Parses and validates one received frame for the transport listening on
// (`self_mac`, `udp_port`). On kOk fills `out`; the checks of cluster id and
// node ids are the caller's (they need the peer table).
DecodeResult DecodeFrame(absl::Span<const uint8_t> frame,
                         const MacAddress& self_mac, uint16_t udp_port,
                         DecodedFrame* out);

// Payload bytes one frame carries at a given IP MTU.
constexpr size_t PayloadBytesMax(size_t mtu_bytes) {
  return mtu_bytes - kMtuOverheadBytes;
}

// Whole messages in a packed frame are each preceded by this length prefix.
inline constexpr size_t kRecordPrefixBytes = 4;

}  // namespace blizzard::transport::dpdk

#endif  // BLIZZARD_TRANSPORT_DPDK_FRAME_FORMAT_H_
