// The payload of a physical-mode Raft entry: how many operations the batch
// held (for counters), the client sessions whose records it changes (so
// that every replica refreshes its in-memory session table from the store)
// and the write set of executing them. Format (versioned; the Raft log and
// the transport checksum the entry around it): node/PHYSICAL.md. Payloads
// come from the network: the decoder validates.
#ifndef BLIZZARD_NODE_PHYSICAL_ENTRY_H_
#define BLIZZARD_NODE_PHYSICAL_ENTRY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "structures/write_set.h"

namespace blizzard::node {

// Version 1: no session section (every entry of a build before sessions
// worked in physical mode, and every entry that changes no session
// record). Version 2: with a non-empty session section. One encoding per
// entry: an entry without session changes is always written as version 1.
inline constexpr uint8_t kPhysicalEntryVersion = 1;
inline constexpr uint8_t kPhysicalEntryVersionSessions = 2;
// Far above any batch (ClusterConfig::batch_ops_max).
inline constexpr uint64_t kPhysicalEntryOpsMax = 1u << 20;
inline constexpr uint64_t kPhysicalEntrySessionsMax = 1u << 20;

struct PhysicalEntry {
  uint64_t ops = 0;
  // Client ids whose session record the write set writes or erases,
  // strictly ascending, non-zero.
  std::vector<uint64_t> session_clients;
  structures::WriteSet write_set;  // Post-images only.
};

// Asserts ops <= kPhysicalEntryOpsMax, the session clients' limit and
// order, and the write set's canonical form.
std::string EncodePhysicalEntry(uint64_t ops, absl::Span<const uint64_t> session_clients,
                                const structures::WriteSet& ws);
inline std::string EncodePhysicalEntry(uint64_t ops, const structures::WriteSet& ws) {
  return EncodePhysicalEntry(ops, {}, ws);
}
// InvalidArgument naming the byte offset: another version, an op count
// above the limit, an empty, unsorted or oversized session section, and
// everything DecodeWriteSet refuses (including a write set for an arena of
// another size than `arena_bytes`).
absl::StatusOr<PhysicalEntry> DecodePhysicalEntry(absl::Span<const uint8_t> bytes,
                                                  uint64_t arena_bytes);

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_PHYSICAL_ENTRY_H_
