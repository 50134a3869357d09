// Client sessions for exactly-once writes (Raft thesis 6.3).
//
// A client wraps a write as `SESSION <client_id> <seq> <command...>`. The
// leader tags the op in the Raft entry with (client, seq); every replica,
// when it applies the entry, executes the op only if seq is above the
// session's last applied seq, and records (seq, result, entry index) in
// the session table IN THE SAME TRANSACTION as the ops and the applied
// index. A retry of the last seq (e.g. after a leader change) is answered
// with the recorded result, never applied twice; a seq below the last gets
// an error. Semantics and limits: node/README.md ("Client sessions").
//
// Store-agnostic: the table lives in the store's own keyspace under a
// reserved prefix that client commands cannot name (IsReservedArgument),
// written with ordinary SET/DEL ops through KvStore's apply epilogue. The
// tag is an ordinary SET op on a reserved key placed right before the
// tagged op in the batch, so the replication mode's entry format is
// unchanged. Deterministic: the table, and which session is evicted when
// it is full (the least recently applied, then the lowest client id), is a
// function of the applied log only.
#ifndef BLIZZARD_NODE_SESSION_TABLE_H_
#define BLIZZARD_NODE_SESSION_TABLE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "structures/kv_store.h"
#include "structures/op.h"

namespace blizzard::node {

// Keys (and arguments) starting with these bytes belong to the node.
inline constexpr std::string_view kReservedPrefix("\xff" "blz\x00", 5);
bool IsReservedArgument(std::string_view arg);

class SessionTable {
 public:
  struct Record {
    uint64_t seq = 0;
    uint64_t last_index = 0;  // Entry that last applied an op of the client.
    structures::OpResult result;
  };

  // How an applied batch resolves each client op (tags removed).
  struct Plan {
    std::vector<structures::Op> execute;  // Ops to run, in order.
    struct Slot {
      int execute = -1;   // Result is execute[execute]'s, or
      int same_as = -1;   // the result of slots[same_as] (a retry in-batch),
      structures::OpResult fixed;  // or this (a retry of an applied op).
      uint64_t client = 0;  // 0: not a session op.
      uint64_t seq = 0;
    };
    std::vector<Slot> slots;  // One per client op of the entry.
    bool has_sessions = false;
  };

  explicit SessionTable(size_t sessions_max) : sessions_max_(sessions_max) {}

  // Rebuilds the volatile index from the store's reserved keys (at open,
  // after a snapshot install). DataLoss for a malformed record.
  absl::Status Load(const structures::KvStore& store);

  const Record* Find(uint64_t client) const;
  size_t size() const { return records_.size(); }
  uint64_t retries_answered() const { return retries_answered_; }

  // Leader: appends `op` to `batch` as a session op of (client, seq).
  static void AppendTagged(std::vector<structures::Op>& batch, uint64_t client, uint64_t seq,
                           structures::Op op);

  // Apply, step 1: which ops of a decoded entry run. InvalidArgument for a
  // malformed tag (a corrupt entry: the replica must stop).
  absl::StatusOr<Plan> PlanBatch(std::vector<structures::Op> ops) const;
  // Step 2, inside the store's transaction (KvStore::Epilogue): the SET and
  // DEL ops that record the batch's sessions at `index` and evict beyond
  // sessions_max. Remembers the change for Commit.
  std::vector<structures::Op> RecordOps(const Plan& plan,
                                        absl::Span<const structures::OpResult> results,
                                        uint64_t index);
  // Step 2 as the store's epilogue for `plan` at `index` (empty when the
  // plan has no session ops). The table and `plan` must outlive it.
  structures::KvStore::Epilogue EpilogueFor(const Plan& plan, uint64_t index);
  // Step 3, after the transaction committed: the volatile index follows.
  void Commit();
  // The reply results of the entry's client ops, in order.
  std::vector<structures::OpResult> Results(const Plan& plan,
                                            absl::Span<const structures::OpResult> results);

  // Physical mode (node/PHYSICAL.md). The clients whose records the last
  // RecordOps writes or evicts, ascending: what a physical entry names so
  // that every replica can follow the change with Refresh.
  std::vector<uint64_t> PendingClients() const;
  // True if `ops` holds a session-tagged op (PlanBatch has work to do).
  static bool HasSessionOps(absl::Span<const structures::Op> ops);
  // Re-reads the records of `clients` from the store, which wrote them by
  // other means than RecordOps (a write set): a present record is loaded,
  // an absent one forgotten. With `undo`, appends what it replaced, for
  // Restore. DataLoss for a malformed record (the clients before it are
  // refreshed).
  struct Saved {
    uint64_t client = 0;
    std::optional<Record> record;  // nullopt: the client had no record.
  };
  absl::Status Refresh(const structures::KvStore& store, absl::Span<const uint64_t> clients,
                       std::vector<Saved>* undo = nullptr);
  // Puts back what Refresh replaced (newest first).
  void Restore(std::vector<Saved> undo);

 private:
  static std::string RecordKey(uint64_t client);
  static std::string EncodeRecord(const Record& r);
  void Put(uint64_t client, Record r);
  void Erase(uint64_t client);

  const size_t sessions_max_;
  std::map<uint64_t, Record> records_;
  std::set<std::pair<uint64_t, uint64_t>> lru_;  // (last_index, client)
  // Computed by RecordOps, applied by Commit.
  std::vector<std::pair<uint64_t, Record>> pending_puts_;
  std::vector<uint64_t> pending_erases_;
  uint64_t retries_answered_ = 0;
};

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_SESSION_TABLE_H_
