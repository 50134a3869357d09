// A write set: the byte ranges of an arena that one transaction changed,
// with their post-images (shipped by physical replication) and, on the
// node that produced or applied it, their pre-images (to undo it).
// Format: structures/FORMAT.md ("Write set"). Encoded write sets come from
// the network and disk: DecodeWriteSet validates everything.
#ifndef BLIZZARD_STRUCTURES_WRITE_SET_H_
#define BLIZZARD_STRUCTURES_WRITE_SET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace blizzard::structures {

struct WriteRange {
  uint64_t offset = 0;
  std::string post;  // Bytes after the transaction.
  std::string pre;   // Bytes before it; empty when decoded from the wire.
  bool operator==(const WriteRange&) const = default;
};

// Ranges sorted by offset, non-empty, neither overlapping nor adjacent
// (adjacent ranges are merged): one canonical form per change.
struct WriteSet {
  uint64_t arena_bytes = 0;
  std::vector<WriteRange> ranges;
  uint64_t bytes() const;  // Sum of post-image sizes.
  bool operator==(const WriteSet&) const = default;
};

inline constexpr uint64_t kWriteSetRangesMax = 1u << 22;

// The wire form: post-images only. Asserts the canonical form.
std::string EncodeWriteSet(const WriteSet& ws);
// InvalidArgument naming the byte offset: another version, truncation,
// trailing bytes, an arena size other than `arena_bytes`, an empty,
// overlapping, adjacent or out-of-arena range, non-canonical varints.
absl::StatusOr<WriteSet> DecodeWriteSet(absl::Span<const uint8_t> bytes, uint64_t arena_bytes);

}  // namespace blizzard::structures

#endif  // BLIZZARD_STRUCTURES_WRITE_SET_H_
