// Raft's log: the persisted part read through LogStorage plus an "unstable"
// in-memory suffix of entries not yet persisted (etcd's raftLog + unstable).
// Internal to //consensus.
//
//   storage:   [FirstIndex() ............ offset-1]  (may hold stale entries
//                                                   >= offset until the
//                                                   driver persists ours)
//   unstable:                      [offset ... LastIndex()]
//                                     ^ offset_in_progress: handed out in a
//                                       Ready, not yet acknowledged by Advance
//
// Indices: applied <= applying <= committed <= LastIndex().
//
// A snapshot received from the leader (Restore) replaces the whole log at
// once: until the driver has installed it (SnapshotInstalled, from
// Advance), the log answers as if storage were already reset to it:
// FirstIndex() = snapshot index + 1, TermAt(snapshot index) = its term,
// everything after it in `unstable`.
//
// Storage errors other than OutOfRange (e.g. DataLoss) are recorded in
// storage_error() and the call answers as if the entry were absent; the
// owner must check storage_error() and stop (Raft goes inert), so that no
// decision taken on the absent value leaves the process.
#ifndef BLIZZARD_CONSENSUS_RAFT_LOG_H_
#define BLIZZARD_CONSENSUS_RAFT_LOG_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "consensus/storage.h"
#include "consensus/types.h"

namespace blizzard::consensus {

class RaftLog {
 public:
  // The caller has checked applied <= committed <= storage->LastIndex() and
  // applied + 1 >= storage->FirstIndex().
  RaftLog(const LogStorage* storage, Index committed, Index applied);

  Index FirstIndex() const;
  Index LastIndex() const;
  Term LastTerm() const { return TermOrZero(LastIndex()); }
  Index committed() const { return committed_; }
  Index applying() const { return applying_; }
  Index applied() const { return applied_; }
  const absl::Status& storage_error() const { return storage_error_; }

  // Term of entry i for i in [FirstIndex() - 1, LastIndex()], OutOfRange
  // outside, or the storage's error.
  absl::StatusOr<Term> TermAt(Index i) const;
  Term TermOrZero(Index i) const;
  bool MatchTerm(Index i, Term term) const;
  // Is a log ending at (last_index, last_term) at least as up to date as
  // ours (Raft 5.4.1)?
  bool IsUpToDate(Index last_index, Term last_term) const;

  // Follower side of AppendEntries. If our entry at `index` has `log_term`,
  // merges `entries` (which follow `index`), truncating our suffix at the
  // first conflict, advances commit to min(commit, index + entries.size())
  // and returns that last new index; nullopt if the terms do not match.
  // `*replaced_from` (if given) is the first index of our entries that the
  // merge replaced, 0 if it only added entries past our last one.
  std::optional<Index> MaybeAppend(Index index, Term log_term, Index commit,
                                   absl::Span<const Entry> entries,
                                   Index* replaced_from = nullptr);
  // Appends contiguous entries, replacing our suffix from
  // entries.front().index. Never touches committed entries. Returns the
  // new last index.
  Index Append(absl::Span<const Entry> entries);
  // The index of the first entry whose term differs from ours (or that we
  // lack), 0 if all match.
  Index FindConflict(absl::Span<const Entry> entries) const;
  // The largest i <= index whose term is <= `term`, with that term (etcd's
  // findConflictByTerm): no entry in (i, index] can match a log whose entry
  // at `index` has `term`. If the terms are unknown, (index, 0).
  std::pair<Index, Term> FindConflictByTerm(Index index, Term term) const;

  void CommitTo(Index index);
  // Leader: commit `index` if it holds an entry of `term` (Raft 5.4.2: only
  // entries of the current term commit by counting replicas).
  bool MaybeCommit(Index index, Term term);

  // Entries [lo, hi), at least one if lo < hi, stopping once bytes_max
  // (EntrySizeBytes) would be exceeded. Requires FirstIndex() <= lo <= hi <=
  // LastIndex() + 1. Empty on a storage error.
  std::vector<Entry> Slice(Index lo, Index hi, uint64_t bytes_max) const;

  // Ready plumbing. Unstable entries not yet handed out:
  bool HasEntriesToPersist() const;
  std::vector<Entry> TakeEntriesToPersist();
  // The driver persisted entries up to (index, term): drop them from memory
  // unless a truncation replaced them meanwhile.
  void StableTo(Index index, Term term);
  // Committed entries not yet handed out for applying.
  bool HasEntriesToApply() const { return committed_ > applying_; }
  std::vector<Entry> TakeEntriesToApply(uint64_t bytes_max);
  void AppliedTo(Index index);

  // ---- Snapshots ----
  // Follower: replaces the log by the snapshot (index > committed): the
  // unstable entries go, commit = applying = meta.index; applied follows
  // when the driver has installed it (SnapshotInstalled).
  void Restore(const SnapshotMeta& meta);
  bool HasSnapshotToInstall() const {
    return pending_snapshot_.has_value() && !snapshot_in_progress_;
  }
  // Hands the pending snapshot out (in a Ready).
  SnapshotMeta TakeSnapshotToInstall();
  // The driver installed the snapshot at `index` (storage is reset to it):
  // applied = index. Ignored if a newer snapshot replaced it meanwhile.
  void SnapshotInstalled(Index index);
  // Storage's snapshot, read through (no pending one counts: a follower
  // never serves snapshots it has not installed). Records storage errors.
  SnapshotMeta StorageSnapshot() const { return storage_->LastSnapshot(); }
  absl::StatusOr<std::string> SnapshotChunk(Index index, uint64_t offset,
                                            uint64_t bytes_max) const;

 private:
  Index UnstableEnd() const { return offset_ + unstable_.size(); }
  void TruncateAndAppend(absl::Span<const Entry> entries);
  void CheckInvariants() const;

  const LogStorage* storage_;
  Index offset_;              // Index of unstable_.front().
  Index offset_in_progress_;  // [offset_, this) is handed out, not stable.
  std::deque<Entry> unstable_;
  Index committed_;
  Index applying_;  // Handed out in a Ready, not yet Advance'd.
  Index applied_;
  // Received from the leader, not yet installed by the driver; handed out
  // in a Ready once snapshot_in_progress_.
  std::optional<SnapshotMeta> pending_snapshot_;
  bool snapshot_in_progress_ = false;
  mutable absl::Status storage_error_;
};

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_RAFT_LOG_H_
