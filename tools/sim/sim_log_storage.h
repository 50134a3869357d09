// A simulated node's Raft log and hard state: pmemlog's LogCore (the very
// code the real node runs over a libpmemobj pool) over a SimPersistence
// region, seen by consensus as a LogStorage.
//
// Fault model (pmemlog/FORMAT.md section 6): a crash keeps the persisted
// words of the region and, in CrashMode::kTorn, a random subset of the words
// stored but not yet persisted (8-byte granularity). A restart runs
// pmemlog's real recovery (LogCore::Open) on that image.
//
// Because LogCore writes and reads the region synchronously, what this
// storage returns is exactly what is durable once Persist returned (and
// what has reached the region while Persist runs): the simulator's
// persist-before-send check relies on it.
#ifndef BLIZZARD_TOOLS_SIM_SIM_LOG_STORAGE_H_
#define BLIZZARD_TOOLS_SIM_SIM_LOG_STORAGE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "consensus/storage.h"
#include "consensus/types.h"
#include "pmemlog/log_core.h"
#include "pmemlog/sim_persistence.h"

namespace blizzard::sim {

// A node's newest snapshot (consensus/storage.h), kept beside the log: the
// bytes of its state machine at meta.index. Fault model: replaced
// atomically (a file written aside and renamed), durable once replaced;
// the simulator owns it with the node's other durable parts.
struct SnapshotStore {
  consensus::SnapshotMeta meta;  // index 0: none.
  std::string data;
};

struct SimLogOptions {
  uint64_t cluster_id = 1;
  consensus::NodeId node = 1;
  // The log's ring; a Persist that does not fit is ResourceExhausted.
  uint64_t ring_bytes = 1u << 20;
  uint64_t seed = 1;  // SimPersistence's choices (torn words, evictions).
  double evict_probability = 0.0;
  // Persist's order. false (the default): a Ready whose hard state raises
  // the term or changes the vote first persists {term, vote, old commit},
  // then the entries, then the full hard state, so that at every instant
  // the durable log has no entry of a term above the durable term and no
  // commit beyond its end (both of which Raft::Create refuses as DataLoss).
  // true: entries then hard state, as node/log_storage.cc does today; a
  // power failure between the two leaves a log that cannot restart
  // (README.md, "Findings").
  bool entries_before_term = false;
};

class SimLogStorage final : public consensus::LogStorage {
 public:
  // A new node: a zeroed region holding a freshly formatted, empty log.
  // `snapshots` (may be null: none) is read by LastSnapshot/SnapshotChunk
  // and must outlive the storage.
  static absl::StatusOr<std::unique_ptr<SimLogStorage>> CreateEmpty(
      const SimLogOptions& options, const SnapshotStore* snapshots = nullptr);
  // A restart: the region holds `image` (a crash image of this node's
  // region) and pmemlog's recovery runs on it. DataLoss etc. from recovery
  // are returned as they are.
  static absl::StatusOr<std::unique_ptr<SimLogStorage>> Recover(
      const SimLogOptions& options, absl::Span<const uint8_t> image,
      const SnapshotStore* snapshots = nullptr);

  // consensus::LogStorage. Entries counts EntrySizeBytes against bytes_max.
  consensus::HardState InitialHardState() const override;
  absl::StatusOr<std::vector<consensus::Entry>> Entries(consensus::Index lo, consensus::Index hi,
                                                        uint64_t bytes_max) const override;
  absl::StatusOr<consensus::Term> TermAt(consensus::Index i) const override;
  consensus::Index FirstIndex() const override { return log_->FirstIndex(); }
  consensus::Index LastIndex() const override { return log_->LastIndex(); }
  consensus::SnapshotMeta LastSnapshot() const override;
  absl::StatusOr<std::string> SnapshotChunk(consensus::Index index, uint64_t offset,
                                            uint64_t bytes_max) const override;

  // Persists a Ready's entries (one batch, replacing any suffix from the
  // first one's index) and its hard state, in the order described at
  // SimLogOptions::entries_before_term; both are durable when OK.
  absl::Status Persist(const std::vector<consensus::Entry>& entries,
                       const std::optional<consensus::HardState>& hard_state);

  // Durably records a new term and vote (keeping the durable commit) if the
  // hard state changes them: before anything of that term enters the log
  // (see entries_before_term). Nothing if entries_before_term.
  absl::Status PersistTermAndVote(const consensus::HardState& hs);
  // pmemlog CompactPrefix: drops entries below `upto`.
  absl::Status Compact(consensus::Index upto) { return log_->CompactPrefix(upto); }
  // pmemlog Reset: the log becomes empty after (index, term) (a snapshot).
  absl::Status ResetTo(consensus::Index index, consensus::Term term) {
    return log_->Reset(index, term);
  }
  bool entries_before_term() const { return entries_before_term_; }
  uint64_t bytes_used() const { return log_->BytesUsed(); }
  uint64_t bytes_capacity() const { return log_->BytesCapacity(); }

  // What the region would hold after a power failure now.
  std::vector<uint8_t> CrashImage(pmemlog::CrashMode mode) { return persistence_->CrashImage(mode); }
  // Called after every store / flush / fence of the region (crash points).
  void set_event_hook(pmemlog::SimPersistence::EventHook hook) {
    persistence_->set_event_hook(std::move(hook));
  }
  uint64_t region_bytes() const { return persistence_->size_bytes(); }
  uint64_t persistence_events() const { return persistence_->events(); }
  pmemlog::LogStats stats() const { return log_->Stats(); }

  static uint64_t RegionBytes(uint64_t ring_bytes);

 private:
  SimLogStorage(const SimLogOptions& options, const SnapshotStore* snapshots,
                std::unique_ptr<pmemlog::SimPersistence> persistence,
                std::unique_ptr<pmemlog::LogCore> log);

  absl::Status SetHardState(const consensus::HardState& hs);

  const bool entries_before_term_;
  const SnapshotStore* const snapshots_;
  std::unique_ptr<pmemlog::SimPersistence> persistence_;
  std::unique_ptr<pmemlog::LogCore> log_;
};

}  // namespace blizzard::sim

#endif  // BLIZZARD_TOOLS_SIM_SIM_LOG_STORAGE_H_
