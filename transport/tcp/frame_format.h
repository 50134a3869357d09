// Wire format of the TCP transport (see transport/FORMAT.md, the normative
// description). All integers are little-endian.
//
//   hello  (32 B, once, dialer -> acceptor):
//     magic u32 | version u16 | reserved u16 | cluster_id u64 | node_id u64 |
//     checksum u64 = XXH3_64bits(bytes [0, 24))
//   frame header (16 B, before every message payload):
//     payload_bytes u32 | kind u32 |
//     checksum u64 = XXH3_64bits_withSeed(payload, seed = bytes [0, 8) as u64)
//
// Seeding the payload checksum with the header's first eight bytes binds the
// length and kind to the payload: a corrupted length is caught even when the
// bytes it points at happen to look like a frame.
#ifndef BLIZZARD_TRANSPORT_TCP_FRAME_FORMAT_H_
#define BLIZZARD_TRANSPORT_TCP_FRAME_FORMAT_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "transport/transport.h"

namespace blizzard::transport::tcp {

inline constexpr uint32_t kHelloMagic = 0x545A4C42;  // "BLZT" on the wire.
inline constexpr uint16_t kFormatVersion = 1;
inline constexpr size_t kHelloBytes = 32;
inline constexpr size_t kFrameHeaderBytes = 16;
inline constexpr uint32_t kFrameKindMessage = 1;  // The only kind in v1.

// Payload lengths travel as u32; the interface's hard limit must fit.
static_assert(kMessageBytesMax <= UINT32_MAX);

using HelloBytes = std::array<uint8_t, kHelloBytes>;
using FrameHeaderBytes = std::array<uint8_t, kFrameHeaderBytes>;

struct Hello {
  uint16_t version = 0;
  uint64_t cluster_id = 0;
  NodeId node_id = 0;
};

HelloBytes EncodeHello(uint64_t cluster_id, NodeId node_id);

// Checks magic, checksum, reserved bits and version. `bytes` must hold at
// least kHelloBytes. DataLoss for damage, FailedPrecondition for a version
// this build does not speak. Cluster and node checks are the caller's.
absl::StatusOr<Hello> DecodeHello(absl::Span<const uint8_t> bytes);

struct FrameHeader {
  uint32_t payload_bytes = 0;
  uint32_t kind = 0;
  uint64_t checksum = 0;
};

FrameHeaderBytes EncodeFrameHeader(absl::Span<const uint8_t> payload);

// Parses the fixed fields; `bytes` must hold at least kFrameHeaderBytes.
// Validation of length and kind against limits is the caller's.
FrameHeader DecodeFrameHeader(absl::Span<const uint8_t> bytes);

// True if `payload` (exactly header.payload_bytes long) matches the checksum.
bool PayloadMatches(const FrameHeader& header,
                    absl::Span<const uint8_t> payload);

}  // namespace blizzard::transport::tcp

#endif  // BLIZZARD_TRANSPORT_TCP_FRAME_FORMAT_H_
