// Raft's view of stable storage: a small read interface (etcd-style).
//
// Raft never writes storage itself. The driver (node/) persists what Ready
// hands it (hard state, entries) and only then calls Raft::Advance; from that
// moment the storage must return the new entries.
//
// The log is [FirstIndex(), LastIndex()]. Entries below FirstIndex() were
// compacted; Term(FirstIndex() - 1) must still be answered (the term of the
// last compacted entry, or 0 for an empty, never-compacted log).
#ifndef BLIZZARD_CONSENSUS_STORAGE_H_
#define BLIZZARD_CONSENSUS_STORAGE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/types.h"

namespace blizzard::consensus {

class LogStorage {
 public:
  virtual ~LogStorage() = default;

  // The hard state persisted last (zero value for a new node).
  virtual HardState InitialHardState() const = 0;

  // Entries [lo, hi), stopping early (but always returning at least one
  // entry if lo < hi) once `bytes_max` of entry data would be exceeded.
  // OutOfRange if lo < FirstIndex() or hi > LastIndex() + 1.
  // DataLoss if a stored entry fails its checksum.
  virtual absl::StatusOr<std::vector<Entry>> Entries(Index lo, Index hi,
                                                     uint64_t bytes_max) const = 0;

  // Term of entry i, for i in [FirstIndex() - 1, LastIndex()].
  // OutOfRange otherwise.
  virtual absl::StatusOr<Term> TermAt(Index i) const = 0;

  virtual Index FirstIndex() const = 0;  // 1 for a never-compacted log.
  virtual Index LastIndex() const = 0;   // FirstIndex() - 1 when empty.
};

// A volatile LogStorage for tests and simulations. Also has the write side
// that a driver uses. Sizes count EntrySizeBytes (types.h).
class MemoryStorage : public LogStorage {
 public:
  MemoryStorage() = default;

  HardState InitialHardState() const override { return hard_state_; }
  absl::StatusOr<std::vector<Entry>> Entries(Index lo, Index hi,
                                             uint64_t bytes_max) const override;
  absl::StatusOr<Term> TermAt(Index i) const override;
  Index FirstIndex() const override { return first_index_; }
  Index LastIndex() const override { return first_index_ + entries_.size() - 1; }

  void SetHardState(const HardState& hs) { hard_state_ = hs; }
  // Appends `entries` (contiguous), first truncating any stored entry at an
  // index >= entries.front().index. FailedPrecondition on a gap.
  absl::Status Append(const std::vector<Entry>& entries);
  // Discards entries below `upto` (they are in the state machine), keeping
  // the term of entry upto - 1. A no-op if upto <= FirstIndex(). OutOfRange
  // if upto > LastIndex() + 1.
  absl::Status Compact(Index upto);

 private:
  HardState hard_state_;
  Index first_index_ = 1;
  Term compacted_term_ = 0;  // Term of entry first_index_ - 1.
  std::vector<Entry> entries_;
};

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_STORAGE_H_
