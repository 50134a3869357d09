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
  compacted_term_ = *TermAt(upto - 1);
  entries_.erase(entries_.begin(),
                 entries_.begin() + static_cast<ptrdiff_t>(upto - first_index_));
  first_index_ = upto;
  return absl::OkStatus();
}

}  // namespace blizzard::consensus
