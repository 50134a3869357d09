#include "node/log_storage.h"

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

absl::Status PmemLogStorage::Persist(
    const std::vector<consensus::Entry>& entries,
    const std::optional<consensus::HardState>& hard_state) {
  if (!entries.empty()) {
    std::vector<pmemlog::LogEntry> batch;
    batch.reserve(entries.size());
    for (const consensus::Entry& e : entries) {
      batch.push_back(pmemlog::LogEntry{e.index, e.term,
                                        static_cast<uint8_t>(e.type), e.data});
    }
    absl::Status s = log_->Append(batch);
    if (!s.ok()) return s;
  }
  if (hard_state.has_value()) {
    return log_->SetHardState(
        pmemlog::HardState{hard_state->term, hard_state->vote, hard_state->commit});
  }
  return absl::OkStatus();
}

}  // namespace blizzard::node
