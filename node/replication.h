// The replication mode: what a Raft entry carries and how a replica applies
// it. Chosen at link time: each implementation library defines
// CreateReplicationMode, and each node variant binary links exactly one.
//   //node:replication_logical   the entry carries the encoded operations;
//                                every replica re-executes them.
//   //node:replication_physical  the entry carries the byte ranges (post-
//                                images) that executing the operations
//                                changes in the arena, allocator metadata
//                                included; every replica writes them
//                                (node/PHYSICAL.md).
#ifndef BLIZZARD_NODE_REPLICATION_H_
#define BLIZZARD_NODE_REPLICATION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "node/session_table.h"
#include "structures/kv_store.h"
#include "structures/op.h"

namespace blizzard::node {

// The leader's Raft log beyond the store's applied index, as a mode that
// executes a batch on top of not-yet-applied entries sees it (physical).
class UnappliedLog {
 public:
  virtual ~UnappliedLog() = default;
  // The term of entry `index` (applied < index < the entry being built).
  virtual absl::StatusOr<uint64_t> TermAt(uint64_t index) const = 0;
  // Entry `index` from durable storage: nullopt if it carries no
  // operations (a Raft no-op or configuration entry), else its payload.
  // Unavailable if the entry is not durable yet.
  virtual absl::StatusOr<std::optional<std::string>> OpsPayload(uint64_t index) const = 0;
};

struct BuiltEntry {
  std::string payload;
  // Physical: the ops' results, known when the entry is built (the leader
  // answers with them once the entry commits). Logical: nullopt, the
  // results come from ApplyEntry.
  std::optional<std::vector<structures::OpResult>> results;
};

struct AppliedEntry {
  uint64_t ops = 0;  // Operations the entry carried.
  // Logical: one result per op. Physical: nullopt (see BuiltEntry).
  std::optional<std::vector<structures::OpResult>> results;
};

class ReplicationMode {
 public:
  virtual ~ReplicationMode() = default;

  // Leader only: the payload of the Raft entry that will get `index` (the
  // log's last index + 1) in `term`, for a batch of validated ops. `log`
  // is read only for entries after the store's applied index. Errors:
  // ResourceExhausted (libpmemobj's undo log is full; an op that finds
  // the ARENA full answers OOM in its result instead), Unavailable (an
  // entry it must build on is not durable yet: retry), others are bugs or
  // damage.
  virtual absl::StatusOr<BuiltEntry> BuildEntry(uint64_t index, uint64_t term,
                                                absl::Span<const structures::Op> ops,
                                                const UnappliedLog& log) = 0;
  // Raft accepted the entry BuildEntry just returned, at (index, term).
  // An entry that was built but not proposed is forgotten at the next
  // BuildEntry.
  virtual void Proposed(uint64_t index, uint64_t term) = 0;

  // Every replica: applies the committed entry at `index` to the store
  // (one failure-atomic transaction that also records `index` and the
  // session table's changes: session_table.h; logical mode computes them
  // here, physical mode's write set carries them and the table re-reads
  // the records the entry names).
  // DataLoss/InvalidArgument if the payload does not decode or does not
  // apply: the replica must stop rather than diverge.
  virtual absl::StatusOr<AppliedEntry> ApplyEntry(uint64_t index,
                                                  absl::Span<const uint8_t> payload) = 0;

  // Advances the applied index over an entry without operations (Raft no-op).
  virtual absl::Status ApplyEmpty(uint64_t index) = 0;

  // Mode-specific INFO lines ("name:value\r\n" each), appended to `out`.
  virtual void AppendInfo(std::string* out) const { (void)out; }
};

// `sessions` may be null (no client sessions). Both must outlive the mode.
// Both modes record sessions (node/PHYSICAL.md for physical mode).
absl::StatusOr<std::unique_ptr<ReplicationMode>> CreateReplicationMode(
    structures::KvStore* store, SessionTable* sessions);

// "logical" or "physical", for INFO and logs.
const char* ReplicationModeName();

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_REPLICATION_H_
