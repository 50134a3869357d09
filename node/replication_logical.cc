// Logical replication: the Raft entry is the encoded batch of operations
// (structures/FORMAT.md), a few bytes of header plus keys and values, and
// every replica re-executes it against its own persistent structures.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "node/replication.h"
#include "structures/kv_store.h"
#include "structures/op.h"

namespace blizzard::node {
namespace {

class LogicalReplication : public ReplicationMode {
 public:
  LogicalReplication(structures::KvStore* store, SessionTable* sessions)
      : store_(store), sessions_(sessions) {}

  absl::StatusOr<BuiltEntry> BuildEntry(uint64_t, uint64_t, absl::Span<const structures::Op> ops,
                                        const UnappliedLog&) override {
    return BuiltEntry{structures::EncodeBatch(ops), std::nullopt};
  }

  void Proposed(uint64_t, uint64_t) override {}

  absl::StatusOr<AppliedEntry> ApplyEntry(
      uint64_t index, absl::Span<const uint8_t> payload) override {
    absl::StatusOr<std::vector<structures::Op>> ops =
        structures::DecodeBatch(payload);
    if (!ops.ok()) {
      return absl::DataLossError(absl::StrCat("committed entry ", index,
                                              " does not decode: ",
                                              ops.status().message()));
    }
    if (sessions_ == nullptr) {
      absl::StatusOr<std::vector<structures::OpResult>> results =
          store_->ApplyBatch(index, *ops);
      if (!results.ok()) return results.status();
      return AppliedEntry{ops->size(), std::move(*results)};
    }
    absl::StatusOr<SessionTable::Plan> plan = sessions_->PlanBatch(std::move(*ops));
    if (!plan.ok()) {
      return absl::DataLossError(absl::StrCat("committed entry ", index, ": ",
                                              plan.status().message()));
    }
    // False when the session records did not fit in the arena even with
    // every op of the entry undone (KvStore::ApplyBatch): the table stays
    // as it was, on every replica alike.
    bool recorded = true;
    absl::StatusOr<std::vector<structures::OpResult>> results =
        store_->ApplyBatch(index, plan->execute, sessions_->EpilogueFor(*plan, index), nullptr,
                           &recorded);
    if (!results.ok()) return results.status();
    if (plan->has_sessions && recorded) sessions_->Commit();
    std::vector<structures::OpResult> replies = sessions_->Results(*plan, *results);
    const uint64_t count = replies.size();
    return AppliedEntry{count, std::move(replies)};
  }

  absl::Status ApplyEmpty(uint64_t index) override {
    return store_->ApplyBatch(index, {}).status();
  }

 private:
  structures::KvStore* store_;
  SessionTable* sessions_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ReplicationMode>> CreateReplicationMode(
    structures::KvStore* store, SessionTable* sessions) {
  return std::make_unique<LogicalReplication>(store, sessions);
}

const char* ReplicationModeName() { return "logical"; }

}  // namespace blizzard::node
