#include "consensus/storage.h"

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"

namespace blizzard::consensus {

absl::StatusOr<std::vector<Entry>> MemoryStorage::Entries(
    Index lo, Index hi, uint64_t bytes_max) const {
  if (lo < first_index_ || hi > LastIndex() + 1 || lo > hi) {
    return absl::OutOfRangeError(absl::StrFormat(
        "entries [%d, %d) outside the log [%d, %d]", lo, hi, first_index_,
        LastIndex()));
  }
  std::vector<Entry> out;
  uint64_t bytes = 0;
  for (Index i = lo; i < hi; ++i) {
    const Entry& e = entries_[i - first_index_];
    const uint64_t size = EntrySizeBytes(e);
    if (!out.empty() && bytes + size > bytes_max) break;
    out.push_back(e);
    bytes += size;
  }
  return out;
}

absl::StatusOr<Term> MemoryStorage::TermAt(Index i) const {
  if (i + 1 < first_index_ || i > LastIndex()) {
    return absl::OutOfRangeError(absl::StrFormat(
        "term of %d outside the log [%d, %d]", i, first_index_, LastIndex()));
  }
  if (i + 1 == first_index_) return compacted_term_;
  return entries_[i - first_index_].term;
}

absl::Status MemoryStorage::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return absl::OkStatus();
  const Index first = entries.front().index;
  if (first < first_index_ || first > LastIndex() + 1) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "append at %d leaves a gap or rewrites compacted entries of [%d, %d]",
        first, first_index_, LastIndex()));
  }
  for (size_t k = 0; k < entries.size(); ++k) {
    if (entries[k].index != first + k) {
      return absl::InvalidArgumentError("appended entries are not contiguous");
    }
  }
  // Term of the entry before `first` bounds the new terms from below (Raft
  // logs have non-decreasing terms); a violation is the caller's bug.
  const Term previous_term = *TermAt(first - 1);
  ABSL_RAW_CHECK(entries.front().term >= previous_term,
                 "appended entry term below its predecessor's");
  entries_.resize(first - first_index_);
  entries_.insert(entries_.end(), entries.begin(), entries.end());
  ABSL_RAW_CHECK(LastIndex() == entries.back().index, "append lost entries");
  return absl::OkStatus();
}

absl::Status MemoryStorage::Compact(Index upto) {
  if (upto <= first_index_) return absl::OkStatus();
  if (upto > LastIndex() + 1) {
    return absl::OutOfRangeError(absl::StrFormat(
        "compact up to %d beyond the log's last index %d", upto, LastIndex()));
  }
  if (snapshot_.index > 0 && upto - 1 > snapshot_.index) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "compact up to %d beyond the snapshot at %d", upto, snapshot_.index));
  }
  compacted_term_ = *TermAt(upto - 1);
  entries_.erase(entries_.begin(),
                 entries_.begin() + static_cast<ptrdiff_t>(upto - first_index_));
  first_index_ = upto;
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryStorage::SnapshotChunk(
    Index index, uint64_t offset, uint64_t bytes_max) const {
  if (snapshot_.index == 0 || index != snapshot_.index) {
    return absl::NotFoundError(absl::StrFormat(
        "no snapshot at %d (holding %d)", index, snapshot_.index));
  }
  if (offset > snapshot_data_.size()) {
    return absl::OutOfRangeError(absl::StrFormat(
        "offset %d beyond the snapshot's %d bytes", offset,
        snapshot_data_.size()));
  }
  ABSL_RAW_CHECK(bytes_max > 0, "SnapshotChunk of 0 bytes");
  return snapshot_data_.substr(offset, bytes_max);
}

absl::Status MemoryStorage::CreateSnapshot(SnapshotMeta meta,
                                           std::string data) {
  if (meta.index == 0 || meta.index + 1 < first_index_ ||
      meta.index > LastIndex() || meta.index < snapshot_.index) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "snapshot at %d outside the log [%d, %d] or older than the one at %d",
        meta.index, first_index_, LastIndex(), snapshot_.index));
  }
  if (*TermAt(meta.index) != meta.term) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "snapshot at %d has term %d, the log %d", meta.index, meta.term,
        *TermAt(meta.index)));
  }
  absl::Status members = ValidateMembership(meta.membership);
  if (!members.ok()) return members;
  meta.bytes = data.size();
  snapshot_ = std::move(meta);
  snapshot_data_ = std::move(data);
  return absl::OkStatus();
}

absl::Status MemoryStorage::InstallSnapshot(const SnapshotMeta& meta,
                                            std::string data) {
  if (meta.index == 0 || meta.term == 0 || meta.index + 1 < first_index_ ||
      data.size() != meta.bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot install snapshot %d@t%d (%d of %d bytes) over the log [%d, %d]",
        meta.index, meta.term, data.size(), meta.bytes, first_index_,
        LastIndex()));
  }
  absl::Status members = ValidateMembership(meta.membership);
  if (!members.ok()) return members;
  entries_.clear();
  first_index_ = meta.index + 1;
  compacted_term_ = meta.term;
  snapshot_ = meta;
  snapshot_data_ = std::move(data);
  return absl::OkStatus();
}

}  // namespace blizzard::consensus
