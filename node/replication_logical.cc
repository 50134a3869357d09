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

  absl::StatusOr<std::string> BuildEntry(
      absl::Span<const structures::Op> ops) override {
    return structures::EncodeBatch(ops);
  }

  absl::StatusOr<std::vector<structures::OpResult>> ApplyEntry(
      uint64_t index, absl::Span<const uint8_t> payload) override {
    absl::StatusOr<std::vector<structures::Op>> ops =
        structures::DecodeBatch(payload);
    if (!ops.ok()) {
      return absl::DataLossError(absl::StrCat("committed entry ", index,
                                              " does not decode: ",
                                              ops.status().message()));
    }
    if (sessions_ == nullptr) return store_->ApplyBatch(index, *ops);
    absl::StatusOr<SessionTable::Plan> plan = sessions_->PlanBatch(std::move(*ops));
    if (!plan.ok()) {
      return absl::DataLossError(absl::StrCat("committed entry ", index, ": ",
                                              plan.status().message()));
    }
    structures::KvStore::Epilogue record;
    if (plan->has_sessions) {
      record = [&](absl::Span<const structures::OpResult> results) {
        return sessions_->RecordOps(*plan, results, index);
      };
    }
    absl::StatusOr<std::vector<structures::OpResult>> results =
        store_->ApplyBatch(index, plan->execute, record);
    if (!results.ok()) return results.status();
    if (plan->has_sessions) sessions_->Commit();
    return sessions_->Results(*plan, *results);
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
