#include "node/log_storage.h"

#include <string>
#include <utility>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::node {

consensus::HardState PmemLogStorage::InitialHardState() const {
  pmemlog::HardState hs = log_->GetHardState();
  return consensus::HardState{hs.term, hs.vote, hs.commit};
}

absl::StatusOr<std::vector<consensus::Entry>> PmemLogStorage::Entries(
    consensus::Index lo, consensus::Index hi, uint64_t bytes_max) const {
  if (lo < FirstIndex() || hi > LastIndex() + 1 || lo > hi) {
    return absl::OutOfRangeError("entries out of range");
  }
  std::vector<consensus::Entry> out;
  uint64_t bytes = 0;
  for (consensus::Index i = lo; i < hi; ++i) {
    absl::StatusOr<pmemlog::LogEntry> e = log_->Read(i);
    if (!e.ok()) return e.status();
    ABSL_RAW_CHECK(e->index == i, "pmemlog returned the wrong index");
    bytes += e->payload.size();
    if (!out.empty() && bytes > bytes_max) break;
    out.push_back(consensus::Entry{e->term, e->index,
                                   static_cast<consensus::EntryType>(e->type),
                                   std::move(e->payload)});
  }
  return out;
}

absl::StatusOr<consensus::Term> PmemLogStorage::TermAt(consensus::Index i) const {
  return log_->TermAt(i);
}

consensus::SnapshotMeta PmemLogStorage::LastSnapshot() const {
  return snapshots_ == nullptr ? consensus::SnapshotMeta{} : snapshots_->meta();
}

absl::StatusOr<std::string> PmemLogStorage::SnapshotChunk(consensus::Index index,
                                                          uint64_t offset,
                                                          uint64_t bytes_max) const {
  if (snapshots_ == nullptr) return consensus::LogStorage::SnapshotChunk(index, offset, bytes_max);
  return snapshots_->ReadChunk(index, offset, bytes_max);
}

absl::Status PmemLogStorage::PersistTermAndVote(const consensus::HardState& hs) {
  const pmemlog::HardState durable = log_->GetHardState();
  if (hs.term == durable.term && hs.vote == durable.vote) return absl::OkStatus();
  ABSL_RAW_CHECK(hs.term >= durable.term, "the term went backwards");
  return log_->SetHardState(pmemlog::HardState{hs.term, hs.vote, durable.commit});
}

absl::Status PmemLogStorage::Persist(
    const std::vector<consensus::Entry>& entries,
    const std::optional<consensus::HardState>& hard_state) {
  // The new term and vote first, with the old commit: the entries may be
  // of the new term (a crash between the two must not leave entries of a
  // term beyond the durable one), and the new commit may name them.
  if (hard_state.has_value() && !entries.empty()) {
    if (absl::Status s = Step(0); !s.ok()) return s;
    if (absl::Status s = PersistTermAndVote(*hard_state); !s.ok()) return s;
  }
  if (!entries.empty()) {
    std::vector<pmemlog::LogEntry> batch;
    batch.reserve(entries.size());
    for (const consensus::Entry& e : entries) {
      ABSL_RAW_CHECK(!hard_state.has_value() || e.term <= hard_state->term,
                     "an entry of a term beyond the hard state's");
      batch.push_back(pmemlog::LogEntry{e.index, e.term,
                                        static_cast<uint8_t>(e.type), e.data});
    }
    if (absl::Status s = Step(1); !s.ok()) return s;
    absl::Status s = log_->Append(batch);
    if (!s.ok()) return s;
  }
  if (hard_state.has_value()) {
    if (absl::Status s = Step(2); !s.ok()) return s;
    return log_->SetHardState(
        pmemlog::HardState{hard_state->term, hard_state->vote, hard_state->commit});
  }
  return absl::OkStatus();
}

}  // namespace blizzard::node
