#include "tools/sim/sim_log_storage.h"

#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_cat.h"
#include "pmemlog/log_format.h"

namespace blizzard::sim {
namespace {

// The meta block at the start of the region, the ring right after it (the
// layout pmemlog's own crash tests use).
constexpr uint64_t kMetaOffset = 0;
constexpr uint64_t kRingOffset = pmemlog::format::kMetaBytes;

pmemlog::RegionLayout Layout(uint64_t ring_bytes) {
  return pmemlog::RegionLayout{kMetaOffset, kRingOffset, ring_bytes};
}

pmemlog::Identity IdentityOf(const SimLogOptions& options) {
  return pmemlog::Identity{options.cluster_id, options.node};
}

pmemlog::SimPersistenceOptions PersistenceOptions(const SimLogOptions& options) {
  return pmemlog::SimPersistenceOptions{SimLogStorage::RegionBytes(options.ring_bytes),
                                        options.seed, options.evict_probability};
}

absl::Status CheckOptions(const SimLogOptions& options) {
  if (options.ring_bytes < pmemlog::format::kRingBytesMin || options.ring_bytes % 64 != 0 ||
      options.ring_bytes > (1ull << 32)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring_bytes ", options.ring_bytes, " must be a multiple of 64 in [",
                     pmemlog::format::kRingBytesMin, ", 4 GiB]"));
  }
  if (options.node == consensus::kNoNode) return absl::InvalidArgumentError("node id 0");
  return absl::OkStatus();
}

}  // namespace

uint64_t SimLogStorage::RegionBytes(uint64_t ring_bytes) { return kRingOffset + ring_bytes; }

SimLogStorage::SimLogStorage(const SimLogOptions& options, const SnapshotStore* snapshots,
                             std::unique_ptr<pmemlog::SimPersistence> persistence,
                             std::unique_ptr<pmemlog::LogCore> log)
    : entries_before_term_(options.entries_before_term),
      snapshots_(snapshots),
      persistence_(std::move(persistence)),
      log_(std::move(log)) {}

absl::StatusOr<std::unique_ptr<SimLogStorage>> SimLogStorage::CreateEmpty(
    const SimLogOptions& options, const SnapshotStore* snapshots) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  auto persistence = std::make_unique<pmemlog::SimPersistence>(PersistenceOptions(options));
  if (absl::Status s =
          pmemlog::LogCore::Format(persistence.get(), Layout(options.ring_bytes), IdentityOf(options));
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::unique_ptr<pmemlog::LogCore>> log =
      pmemlog::LogCore::Open(persistence.get(), kMetaOffset, IdentityOf(options));
  if (!log.ok()) return log.status();
  return std::unique_ptr<SimLogStorage>(new SimLogStorage(options, snapshots, std::move(persistence), std::move(*log)));
}

absl::StatusOr<std::unique_ptr<SimLogStorage>> SimLogStorage::Recover(
    const SimLogOptions& options, absl::Span<const uint8_t> image, const SnapshotStore* snapshots) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  if (image.size() != RegionBytes(options.ring_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat("crash image of ", image.size(),
                                                   " bytes, expected ",
                                                   RegionBytes(options.ring_bytes)));
  }
  auto persistence = std::make_unique<pmemlog::SimPersistence>(PersistenceOptions(options), image);
  absl::StatusOr<std::unique_ptr<pmemlog::LogCore>> log =
      pmemlog::LogCore::Open(persistence.get(), kMetaOffset, IdentityOf(options));
  if (!log.ok()) return log.status();
  return std::unique_ptr<SimLogStorage>(new SimLogStorage(options, snapshots, std::move(persistence), std::move(*log)));
}

consensus::HardState SimLogStorage::InitialHardState() const {
  const pmemlog::HardState hs = log_->GetHardState();
  return consensus::HardState{hs.term, hs.vote, hs.commit};
}

absl::StatusOr<std::vector<consensus::Entry>> SimLogStorage::Entries(consensus::Index lo,
                                                                     consensus::Index hi,
                                                                     uint64_t bytes_max) const {
  if (lo < FirstIndex() || hi > LastIndex() + 1 || lo > hi) {
    return absl::OutOfRangeError(absl::StrCat("entries [", lo, ", ", hi, ") outside the log [",
                                              FirstIndex(), ", ", LastIndex(), "]"));
  }
  std::vector<consensus::Entry> out;
  uint64_t bytes = 0;
  for (consensus::Index i = lo; i < hi; ++i) {
    absl::StatusOr<pmemlog::LogEntry> e = log_->Read(i);
    if (!e.ok()) return e.status();
    ABSL_RAW_CHECK(e->index == i, "pmemlog returned another index");
    consensus::Entry entry{e->term, e->index, static_cast<consensus::EntryType>(e->type),
                           std::move(e->payload)};
    bytes += consensus::EntrySizeBytes(entry);
    if (!out.empty() && bytes > bytes_max) break;
    out.push_back(std::move(entry));
  }
  return out;
}

absl::StatusOr<consensus::Term> SimLogStorage::TermAt(consensus::Index i) const {
  return log_->TermAt(i);
}

consensus::SnapshotMeta SimLogStorage::LastSnapshot() const {
  return snapshots_ == nullptr ? consensus::SnapshotMeta{} : snapshots_->meta;
}

absl::StatusOr<std::string> SimLogStorage::SnapshotChunk(consensus::Index index, uint64_t offset,
                                                         uint64_t bytes_max) const {
  if (snapshots_ == nullptr || snapshots_->meta.index == 0 || snapshots_->meta.index != index) {
    return absl::NotFoundError(absl::StrCat("snapshot ", index, " is not held"));
  }
  ABSL_RAW_CHECK(snapshots_->meta.bytes == snapshots_->data.size(), "snapshot size mismatch");
  if (offset > snapshots_->data.size()) {
    return absl::OutOfRangeError(absl::StrCat("offset ", offset, " beyond snapshot ", index));
  }
  return snapshots_->data.substr(offset, bytes_max);
}

absl::Status SimLogStorage::PersistTermAndVote(const consensus::HardState& hs) {
  const consensus::HardState durable = InitialHardState();
  if (entries_before_term_ || (hs.term == durable.term && hs.vote == durable.vote)) {
    return absl::OkStatus();
  }
  ABSL_RAW_CHECK(hs.term >= durable.term, "the term went backwards");
  return SetHardState(consensus::HardState{hs.term, hs.vote, durable.commit});
}

absl::Status SimLogStorage::SetHardState(const consensus::HardState& hs) {
  if (absl::Status s = log_->SetHardState(pmemlog::HardState{hs.term, hs.vote, hs.commit}); !s.ok()) {
    return s;
  }
  ABSL_RAW_CHECK(InitialHardState() == hs, "hard state did not stick");
  return absl::OkStatus();
}

absl::Status SimLogStorage::Persist(const std::vector<consensus::Entry>& entries,
                                    const std::optional<consensus::HardState>& hard_state) {
  // The new term and vote first, with the old commit: the entries may be
  // of the new term, and the commit may name them.
  if (hard_state.has_value() && !entries.empty()) {
    if (absl::Status s = PersistTermAndVote(*hard_state); !s.ok()) return s;
  }
  if (!entries.empty()) {
    std::vector<pmemlog::LogEntry> batch;
    batch.reserve(entries.size());
    for (const consensus::Entry& e : entries) {
      ABSL_RAW_CHECK(!hard_state.has_value() || e.term <= hard_state->term,
                     "an entry of a term beyond the hard state's");
      batch.push_back(pmemlog::LogEntry{e.index, e.term, static_cast<uint8_t>(e.type), e.data});
    }
    if (absl::Status s = log_->Append(batch); !s.ok()) return s;
    ABSL_RAW_CHECK(log_->LastIndex() == entries.back().index, "append did not end the log");
  }
  if (hard_state.has_value() && !(InitialHardState() == *hard_state)) {
    return SetHardState(*hard_state);
  }
  return absl::OkStatus();
}

}  // namespace blizzard::sim
