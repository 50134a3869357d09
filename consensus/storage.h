// Raft's view of stable storage: a small read interface (etcd-style).
//
// Raft never writes storage itself. The driver (node/) persists what Ready
// hands it (hard state, entries) and only then calls Raft::Advance; from that
// moment the storage must return the new entries.
//
// The log is [FirstIndex(), LastIndex()]. Entries below FirstIndex() were
// compacted; Term(FirstIndex() - 1) must still be answered (the term of the
// last compacted entry, or 0 for an empty, never-compacted log).
//
// Snapshots (optional; the default methods mean "none"). A snapshot is the
// application's state after applying every entry up to some index, as
// opaque bytes the driver keeps (in Blizzard: a copy of the data pool).
// Raft never holds a whole snapshot: a leader reads it in chunks through
// SnapshotChunk() to stream it to a follower that needs compacted entries;
// a follower hands the chunks it receives to the driver (Ready). Compaction
// is the driver's decision, made without telling Raft (Raft reads
// FirstIndex() and LastSnapshot() when it needs them): the driver may
// discard entries below `upto` once (1) upto - 1 <= the applied index and
// (2) it holds a snapshot with index >= upto - 1 that LastSnapshot()
// reports. Raft::SnapshotMetaForApplied() gives the metadata of a snapshot
// taken of the state machine as it is after an Advance.
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

  // The newest snapshot the driver holds (durably), index 0 if none. When
  // nonzero: FirstIndex() - 1 <= index <= LastIndex() and TermAt(index) ==
  // term (the log holds the snapshot's last entry or was compacted exactly
  // up to it); Raft::Create checks this. Must be implemented before a log is
  // compacted in a group that changes membership: the membership in force
  // at a compacted index is known only from the snapshot.
  virtual SnapshotMeta LastSnapshot() const { return {}; }

  // Exactly min(bytes_max, size - offset) bytes of the snapshot whose last
  // index is `index`, starting at `offset` (bytes_max > 0). Errors:
  //   NotFound    that snapshot is no longer held (a newer one replaced
  //               it): Raft restarts the transfer with LastSnapshot().
  //   OutOfRange  offset beyond the snapshot's size.
  //   other       (DataLoss...) the snapshot is unreadable: Raft goes inert.
  // The bytes of one snapshot must not change while LastSnapshot() reports
  // it (a transfer may read it over many ticks).
  virtual absl::StatusOr<std::string> SnapshotChunk(Index index,
                                                    uint64_t offset,
                                                    uint64_t bytes_max) const {
    (void)index;
    (void)offset;
    (void)bytes_max;
    return absl::NotFoundError("this storage keeps no snapshots");
  }
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
  SnapshotMeta LastSnapshot() const override { return snapshot_; }
  absl::StatusOr<std::string> SnapshotChunk(Index index, uint64_t offset,
                                            uint64_t bytes_max) const override;

  void SetHardState(const HardState& hs) { hard_state_ = hs; }
  // Appends `entries` (contiguous), first truncating any stored entry at an
  // index >= entries.front().index. FailedPrecondition on a gap.
  absl::Status Append(const std::vector<Entry>& entries);
  // Discards entries below `upto` (they are in the state machine), keeping
  // the term of entry upto - 1. A no-op if upto <= FirstIndex(). OutOfRange
  // if upto > LastIndex() + 1; FailedPrecondition if a snapshot is held and
  // does not cover upto - 1.
  absl::Status Compact(Index upto);

  // Keeps `data` as the snapshot described by `meta` (meta.bytes is set to
  // data.size()), replacing the previous one: the driver took it of its
  // state machine at meta.index. InvalidArgument unless meta.index is in
  // [FirstIndex() - 1, LastIndex()] with term meta.term, at least the
  // current snapshot's index, and meta.membership is valid.
  absl::Status CreateSnapshot(SnapshotMeta meta, std::string data);
  // Installs a snapshot received from a leader: keeps it and discards the
  // whole log (afterwards FirstIndex() == meta.index + 1, LastIndex() ==
  // meta.index, TermAt(meta.index) == meta.term), like pmemlog's Reset.
  // InvalidArgument if meta.index < FirstIndex() - 1 (older than the
  // compaction point) or data.size() != meta.bytes.
  absl::Status InstallSnapshot(const SnapshotMeta& meta, std::string data);
  const std::string& snapshot_data() const { return snapshot_data_; }

 private:
  HardState hard_state_;
  Index first_index_ = 1;
  Term compacted_term_ = 0;  // Term of entry first_index_ - 1.
  std::vector<Entry> entries_;
  SnapshotMeta snapshot_;
  std::string snapshot_data_;
};

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_STORAGE_H_
