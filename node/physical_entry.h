// The payload of a physical-mode Raft entry: how many operations the batch
// held (for counters) and the write set of executing them. Format (versioned;
// the Raft log and the transport checksum the entry around it):
// node/PHYSICAL.md. Payloads come from the network: the decoder validates.
#ifndef BLIZZARD_NODE_PHYSICAL_ENTRY_H_
#define BLIZZARD_NODE_PHYSICAL_ENTRY_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "structures/write_set.h"

namespace blizzard::node {

inline constexpr uint8_t kPhysicalEntryVersion = 1;
// Far above any batch (ClusterConfig::batch_ops_max).
inline constexpr uint64_t kPhysicalEntryOpsMax = 1u << 20;

struct PhysicalEntry {
  uint64_t ops = 0;
  structures::WriteSet write_set;  // Post-images only.
};

// Asserts ops <= kPhysicalEntryOpsMax and the write set's canonical form.
std::string EncodePhysicalEntry(uint64_t ops, const structures::WriteSet& ws);
// InvalidArgument naming the byte offset: another version, an op count
// above the limit, and everything DecodeWriteSet refuses (including a
// write set for an arena of another size than `arena_bytes`).
absl::StatusOr<PhysicalEntry> DecodePhysicalEntry(absl::Span<const uint8_t> bytes,
                                                  uint64_t arena_bytes);

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_PHYSICAL_ENTRY_H_
