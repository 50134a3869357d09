// Adapts the persistent Raft log (pmemlog) to consensus::LogStorage, and
// persists what a Raft Ready asks for. This is the only place where the
// consensus and pmemlog vocabularies meet.
#ifndef BLIZZARD_NODE_LOG_STORAGE_H_
#define BLIZZARD_NODE_LOG_STORAGE_H_

#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/storage.h"
#include "consensus/types.h"
#include "pmemlog/pmem_log.h"

namespace blizzard::node {

class PmemLogStorage : public consensus::LogStorage {
 public:
  explicit PmemLogStorage(pmemlog::PmemLog* log) : log_(log) {}

  consensus::HardState InitialHardState() const override;
  absl::StatusOr<std::vector<consensus::Entry>> Entries(
      consensus::Index lo, consensus::Index hi, uint64_t bytes_max) const override;
  absl::StatusOr<consensus::Term> TermAt(consensus::Index i) const override;
  consensus::Index FirstIndex() const override { return log_->FirstIndex(); }
  consensus::Index LastIndex() const override { return log_->LastIndex(); }

  // Persists a Ready's entries (one batch: one fence) and then its hard
  // state. When this returns OK both are durable.
  absl::Status Persist(const std::vector<consensus::Entry>& entries,
                       const std::optional<consensus::HardState>& hard_state);

 private:
  pmemlog::PmemLog* log_;
};

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_LOG_STORAGE_H_
