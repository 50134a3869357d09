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

// Limits enforced by DecodeMessage (the same as types.h's message limits).
inline constexpr uint32_t kWireEntriesMax = kMessageEntriesMax;
inline constexpr uint64_t kWireEntryBytesMax = kEntryDataBytesMax;

std::string EncodeMessage(const Message& message);
// DataLoss on a checksum mismatch, InvalidArgument on anything malformed
// (bad magic, version, type, lengths beyond the limits, trailing bytes, or a
// message failing ValidateMessage). Every OK result passes ValidateMessage,
// and the encoding is canonical: EncodeMessage(*DecodeMessage(b)) == b.
absl::StatusOr<Message> DecodeMessage(absl::Span<const uint8_t> bytes);

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_CODEC_H_
