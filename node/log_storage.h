// Adapts the persistent Raft log (pmemlog) and the node's snapshot store to
// consensus::LogStorage, and persists what a Raft Ready asks for. This is
// the only place where the consensus and pmemlog vocabularies meet.
#ifndef BLIZZARD_NODE_LOG_STORAGE_H_
#define BLIZZARD_NODE_LOG_STORAGE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/storage.h"
#include "consensus/types.h"
#include "node/snapshot_store.h"
#include "pmemlog/pmem_log.h"

namespace blizzard::node {

class PmemLogStorage : public consensus::LogStorage {
 public:
  // `snapshots` may be null (no snapshots: the defaults of LogStorage).
  // Both must outlive this object.
  explicit PmemLogStorage(pmemlog::PmemLog* log, SnapshotStore* snapshots = nullptr)
      : log_(log), snapshots_(snapshots) {}

  consensus::HardState InitialHardState() const override;
  absl::StatusOr<std::vector<consensus::Entry>> Entries(
      consensus::Index lo, consensus::Index hi, uint64_t bytes_max) const override;
  absl::StatusOr<consensus::Term> TermAt(consensus::Index i) const override;
  consensus::Index FirstIndex() const override { return log_->FirstIndex(); }
  consensus::Index LastIndex() const override { return log_->LastIndex(); }
  consensus::SnapshotMeta LastSnapshot() const override;
  absl::StatusOr<std::string> SnapshotChunk(consensus::Index index, uint64_t offset,
                                            uint64_t bytes_max) const override;

  // Persists a Ready's entries (one batch: one fence) and its hard state.
  // When this returns OK both are durable. Every crash point in between
  // leaves a log Raft restarts from: a new term or vote is made durable
  // (with the old commit) BEFORE entries of that term are appended, then
  // the full hard state after them (tools/sim/README.md, finding 1).
  absl::Status Persist(const std::vector<consensus::Entry>& entries,
                       const std::optional<consensus::HardState>& hard_state);

  // Makes `hs`'s term and vote durable, keeping the durable commit; a
  // no-op when they are unchanged. Before a snapshot install, whose last
  // entry may be of the term this Ready raises.
  absl::Status PersistTermAndVote(const consensus::HardState& hs);

  // Tests: called before each durable step of Persist (0: term and vote,
  // 1: entries, 2: hard state); an error stops Persist there, as a crash
  // between two steps would (each pmemlog call is itself crash-atomic).
  void set_step_hook(std::function<absl::Status(int step)> hook) { hook_ = std::move(hook); }

 private:
  absl::Status Step(int step) const { return hook_ ? hook_(step) : absl::OkStatus(); }

  std::function<absl::Status(int)> hook_;
  pmemlog::PmemLog* log_;
  SnapshotStore* snapshots_;
};

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_LOG_STORAGE_H_
