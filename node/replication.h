// The replication mode: what a Raft entry carries and how a replica applies
// it. Chosen at link time: each implementation library defines
// CreateReplicationMode, and each node variant binary links exactly one.
//   //node:replication_logical   the entry carries the encoded operations;
//                                every replica re-executes them.
//   (physical: the entry carries the byte ranges the leader's transaction
//    changed; a later issue.)
#ifndef BLIZZARD_NODE_REPLICATION_H_
#define BLIZZARD_NODE_REPLICATION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "node/session_table.h"
#include "structures/kv_store.h"
#include "structures/op.h"

namespace blizzard::node {

class ReplicationMode {
 public:
  virtual ~ReplicationMode() = default;

  // Leader only: the payload of one Raft entry for a batch of client ops.
  // The ops are already validated.
  virtual absl::StatusOr<std::string> BuildEntry(
      absl::Span<const structures::Op> ops) = 0;

  // Every replica: applies the committed entry at `index` to the store
  // (one failure-atomic transaction that also records `index` and the
  // session table's changes: session_table.h), returning one result per
  // client op (the leader replies with them). DataLoss/
  // InvalidArgument if the payload does not decode: the replica must stop.
  virtual absl::StatusOr<std::vector<structures::OpResult>> ApplyEntry(
      uint64_t index, absl::Span<const uint8_t> payload) = 0;

  // Advances the applied index over an entry without operations (Raft no-op).
  virtual absl::Status ApplyEmpty(uint64_t index) = 0;
};

// `sessions` may be null (no client sessions). Both must outlive the mode.
absl::StatusOr<std::unique_ptr<ReplicationMode>> CreateReplicationMode(
    structures::KvStore* store, SessionTable* sessions);

// "logical" or "physical", for INFO and logs.
const char* ReplicationModeName();

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_REPLICATION_H_
