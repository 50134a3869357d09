// Wire encoding of Raft messages between nodes (peer messages are untrusted:
// DecodeMessage validates everything and never crashes on any input).
// Format: consensus/WIRE_FORMAT.md (versioned, checksummed).
#ifndef BLIZZARD_CONSENSUS_CODEC_H_
#define BLIZZARD_CONSENSUS_CODEC_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "consensus/types.h"

namespace blizzard::consensus {

// Limits enforced by DecodeMessage.
inline constexpr uint32_t kWireEntriesMax = 1u << 16;
inline constexpr uint64_t kWireEntryBytesMax = 32u << 20;

std::string EncodeMessage(const Message& message);
// DataLoss on a checksum mismatch, InvalidArgument on anything malformed
// (bad version, type, lengths beyond the limits, trailing bytes).
absl::StatusOr<Message> DecodeMessage(absl::Span<const uint8_t> bytes);

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_CODEC_H_
