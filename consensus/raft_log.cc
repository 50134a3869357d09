#include "consensus/raft_log.h"

#include <algorithm>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"

namespace blizzard::consensus {

RaftLog::RaftLog(const LogStorage* storage, Index committed, Index applied)
    : storage_(storage),
      offset_(storage->LastIndex() + 1),
      offset_in_progress_(offset_),
      committed_(committed),
      applying_(applied),
      applied_(applied) {
  CheckInvariants();
}

Index RaftLog::FirstIndex() const {
  if (pending_snapshot_.has_value()) return pending_snapshot_->index + 1;
  return storage_->FirstIndex();
}

Index RaftLog::LastIndex() const {
  if (!unstable_.empty()) return unstable_.back().index;
  if (pending_snapshot_.has_value()) return pending_snapshot_->index;
  // Entries leave unstable_ only once the driver stored them, and then
  // nothing follows them in storage.
  ABSL_RAW_CHECK(storage_->LastIndex() + 1 == offset_,
                 "storage last index disagrees with the stable offset");
  return storage_->LastIndex();
}

absl::StatusOr<Term> RaftLog::TermAt(Index i) const {
  if (i >= offset_ && i < UnstableEnd()) return unstable_[i - offset_].term;
  const Index last = LastIndex();
  if (i > last || i + 1 < FirstIndex()) {
    return absl::OutOfRangeError(absl::StrFormat(
        "no term for index %d in log [%d, %d]", i, FirstIndex(), last));
  }
  if (pending_snapshot_.has_value()) {
    // FirstIndex() - 1 <= i < offset_ == FirstIndex().
    ABSL_RAW_CHECK(i == pending_snapshot_->index, "pending snapshot range");
    return pending_snapshot_->term;
  }
  // Here i < offset_: entries at or past offset_ are all in unstable_.
  absl::StatusOr<Term> term = storage_->TermAt(i);
  if (!term.ok() && !absl::IsOutOfRange(term.status()) &&
      storage_error_.ok()) {
    storage_error_ = term.status();
  }
  return term;
}

Term RaftLog::TermOrZero(Index i) const {
  absl::StatusOr<Term> term = TermAt(i);
  return term.ok() ? *term : 0;
}

bool RaftLog::MatchTerm(Index i, Term term) const {
  absl::StatusOr<Term> t = TermAt(i);
  return t.ok() && *t == term;
}

bool RaftLog::IsUpToDate(Index last_index, Term last_term) const {
  const Term our_term = LastTerm();
  return last_term > our_term ||
         (last_term == our_term && last_index >= LastIndex());
}

std::optional<Index> RaftLog::MaybeAppend(Index index, Term log_term,
                                          Index commit,
                                          absl::Span<const Entry> entries,
                                          Index* replaced_from) {
  if (replaced_from != nullptr) *replaced_from = 0;
  if (!MatchTerm(index, log_term)) return std::nullopt;
  const Index last_new = index + entries.size();
  const Index conflict = FindConflict(entries);
  if (conflict != 0) {
    if (replaced_from != nullptr && conflict <= LastIndex()) *replaced_from = conflict;
    // Log matching (Raft 5.3): a leader's log agrees with every committed
    // entry, so a conflict below our commit means safety is already lost.
    ABSL_RAW_CHECK(conflict > committed_,
                   "append conflicts with a committed entry");
    Append(entries.subspan(conflict - (index + 1)));
  }
  CommitTo(std::min(commit, last_new));
  return last_new;
}

Index RaftLog::Append(absl::Span<const Entry> entries) {
  if (entries.empty()) return LastIndex();
  ABSL_RAW_CHECK(entries.front().index > committed_,
                 "append would truncate committed entries");
  ABSL_RAW_CHECK(entries.front().index <= LastIndex() + 1,
                 "append would leave a gap");
  TruncateAndAppend(entries);
  CheckInvariants();
  return LastIndex();
}

Index RaftLog::FindConflict(absl::Span<const Entry> entries) const {
  for (const Entry& e : entries) {
    if (!MatchTerm(e.index, e.term)) return e.index;
  }
  return 0;
}

std::pair<Index, Term> RaftLog::FindConflictByTerm(Index index,
                                                   Term term) const {
  for (;;) {
    absl::StatusOr<Term> t = TermAt(index);
    if (!t.ok()) return {index, 0};
    if (*t <= term) return {index, *t};
    // Terms only decrease going backwards and TermAt(FirstIndex() - 1)
    // answers, so index 0 (term 0) ends the walk at the latest.
    ABSL_RAW_CHECK(index > 0, "term of index 0 must be 0");
    --index;
  }
}

void RaftLog::CommitTo(Index index) {
  if (index <= committed_) return;  // Commit never goes back.
  ABSL_RAW_CHECK(index <= LastIndex(), "commit beyond the last index");
  committed_ = index;
}

bool RaftLog::MaybeCommit(Index index, Term term) {
  if (index > committed_ && TermOrZero(index) == term) {
    CommitTo(index);
    return true;
  }
  return false;
}

std::vector<Entry> RaftLog::Slice(Index lo, Index hi,
                                  uint64_t bytes_max) const {
  ABSL_RAW_CHECK(FirstIndex() <= lo && lo <= hi && hi <= LastIndex() + 1,
                 "slice out of the log");
  std::vector<Entry> out;
  uint64_t bytes = 0;
  if (lo < offset_) {
    const Index stored_hi = std::min(hi, offset_);
    absl::StatusOr<std::vector<Entry>> stored =
        storage_->Entries(lo, stored_hi, bytes_max);
    if (!stored.ok()) {
      if (storage_error_.ok()) storage_error_ = stored.status();
      return {};
    }
    // The storage contract, checked where its answer is used.
    ABSL_RAW_CHECK(!stored->empty() && stored->size() <= stored_hi - lo,
                   "storage returned a wrong number of entries");
    for (size_t k = 0; k < stored->size(); ++k) {
      ABSL_RAW_CHECK((*stored)[k].index == lo + k,
                     "storage returned non-contiguous entries");
      bytes += EntrySizeBytes((*stored)[k]);
    }
    out = std::move(*stored);
    if (out.size() < stored_hi - lo) return out;  // Stopped at bytes_max.
  }
  for (Index i = std::max(lo, offset_); i < hi; ++i) {
    const Entry& e = unstable_[i - offset_];
    const uint64_t size = EntrySizeBytes(e);
    if (!out.empty() && bytes + size > bytes_max) break;
    out.push_back(e);
    bytes += size;
  }
  return out;
}

bool RaftLog::HasEntriesToPersist() const {
  return offset_in_progress_ < UnstableEnd();
}

std::vector<Entry> RaftLog::TakeEntriesToPersist() {
  std::vector<Entry> out(
      unstable_.begin() + static_cast<ptrdiff_t>(offset_in_progress_ - offset_),
      unstable_.end());
  offset_in_progress_ = UnstableEnd();
  return out;
}

void RaftLog::StableTo(Index index, Term term) {
  // A truncation since the entries were handed out replaced them (different
  // term) or dropped them: their persisted copies are overwritten later.
  if (index < offset_ || index >= UnstableEnd()) return;
  if (unstable_[index - offset_].term != term) return;
  ABSL_RAW_CHECK(index < offset_in_progress_,
                 "entries marked stable before being handed out");
  unstable_.erase(unstable_.begin(),
                  unstable_.begin() + static_cast<ptrdiff_t>(index + 1 - offset_));
  offset_ = index + 1;
  CheckInvariants();
}

std::vector<Entry> RaftLog::TakeEntriesToApply(uint64_t bytes_max) {
  if (!HasEntriesToApply()) return {};
  const Index lo = std::max(applying_ + 1, FirstIndex());
  std::vector<Entry> out = Slice(lo, committed_ + 1, bytes_max);
  if (out.empty()) return out;  // Storage error (recorded).
  ABSL_RAW_CHECK(out.front().index == applying_ + 1,
                 "entries to apply do not follow the applied index");
  applying_ = out.back().index;
  CheckInvariants();
  return out;
}

void RaftLog::AppliedTo(Index index) {
  ABSL_RAW_CHECK(index >= applied_ && index <= applying_,
                 "applied index outside [applied, applying]");
  applied_ = index;
}

void RaftLog::Restore(const SnapshotMeta& meta) {
  ABSL_RAW_CHECK(meta.index > committed_, "restoring a snapshot below commit");
  pending_snapshot_ = meta;
  snapshot_in_progress_ = false;
  unstable_.clear();
  offset_ = meta.index + 1;
  offset_in_progress_ = offset_;
  committed_ = meta.index;
  // The snapshot replaces everything up to its index: nothing below it is
  // handed out for applying any more.
  applying_ = meta.index;
  CheckInvariants();
}

SnapshotMeta RaftLog::TakeSnapshotToInstall() {
  ABSL_RAW_CHECK(HasSnapshotToInstall(), "no snapshot to install");
  snapshot_in_progress_ = true;
  return *pending_snapshot_;
}

void RaftLog::SnapshotInstalled(Index index) {
  if (!pending_snapshot_.has_value() || !snapshot_in_progress_ ||
      pending_snapshot_->index != index) {
    return;  // Replaced by a newer snapshot since it was handed out.
  }
  const SnapshotMeta meta = *std::move(pending_snapshot_);
  pending_snapshot_.reset();
  snapshot_in_progress_ = false;
  // The driver's contract (raft.h): storage now starts at the snapshot.
  absl::StatusOr<Term> term = storage_->TermAt(meta.index);
  ABSL_RAW_CHECK(storage_->FirstIndex() == meta.index + 1 && term.ok() &&
                     *term == meta.term &&
                     storage_->LastSnapshot().index == meta.index,
                 "Advance: the driver did not install the snapshot");
  ABSL_RAW_CHECK(applied_ <= meta.index, "applied beyond an installed snapshot");
  applied_ = meta.index;
  CheckInvariants();
}

absl::StatusOr<std::string> RaftLog::SnapshotChunk(Index index,
                                                   uint64_t offset,
                                                   uint64_t bytes_max) const {
  absl::StatusOr<std::string> chunk =
      storage_->SnapshotChunk(index, offset, bytes_max);
  if (!chunk.ok() && !absl::IsNotFound(chunk.status()) &&
      storage_error_.ok()) {
    storage_error_ = chunk.status();
  }
  return chunk;
}

void RaftLog::TruncateAndAppend(absl::Span<const Entry> entries) {
  const Index after = entries.front().index - 1;
  if (after + 1 == UnstableEnd()) {
    // The common case: extend the unstable suffix.
  } else if (after + 1 <= offset_) {
    // Replace the whole unstable suffix; the stale stored entries from
    // `after + 1` are overwritten when the driver persists these.
    offset_ = after + 1;
    offset_in_progress_ = offset_;
    unstable_.clear();
  } else {
    unstable_.erase(unstable_.begin() + static_cast<ptrdiff_t>(after + 1 - offset_),
                    unstable_.end());
    offset_in_progress_ = std::min(offset_in_progress_, after + 1);
  }
  unstable_.insert(unstable_.end(), entries.begin(), entries.end());
}

void RaftLog::CheckInvariants() const {
  ABSL_RAW_CHECK(offset_ <= offset_in_progress_ &&
                     offset_in_progress_ <= UnstableEnd(),
                 "unstable: in-progress offset out of range");
  ABSL_RAW_CHECK(applied_ <= applying_ && applying_ <= committed_,
                 "applied <= applying <= committed violated");
  ABSL_RAW_CHECK(committed_ <= LastIndex(), "commit beyond the last index");
  ABSL_RAW_CHECK(unstable_.empty() || unstable_.front().index == offset_,
                 "unstable entries do not start at the offset");
}

}  // namespace blizzard::consensus
