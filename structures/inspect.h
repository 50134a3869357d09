// A human-readable description of a keyspace pool, for the pool inspector tool
// (tools/). Opens the pool without the cluster/node check, verifies it
// completely and describes it.
#ifndef BLIZZARD_STRUCTURES_INSPECT_H_
#define BLIZZARD_STRUCTURES_INSPECT_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace blizzard::structures {

// Header, applied index, key count, state hash, arena and type statistics
// and the first `entries_max` keys (table order) with their types and
// sizes (bytes of a string, elements of a container).
// Errors: those of KvStore::Open (NotFound, FailedPrecondition for a foreign
// pool, DataLoss for a damaged header); DataLoss when the walk finds damage,
// with the header part of the description in the message.
// Note: opening runs libpmemobj's recovery (rolls back an interrupted
// transaction), as any open would; the pool must not be open elsewhere.
absl::StatusOr<std::string> DescribeStore(const std::string& path, size_t entries_max);

}  // namespace blizzard::structures

#endif  // BLIZZARD_STRUCTURES_INSPECT_H_
