#include "pmemlog/pmem_log.h"

#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_format.h"
#include "pmemlog/log_core.h"
#include "pmemlog/log_format.h"
#include "pmemlog/log_pool.h"

namespace blizzard::pmemlog {

// The pool (mapping and persistence) and the log core running over it.
class PmemLog::Impl {
 public:
  Impl(std::unique_ptr<LogPool> pool, std::unique_ptr<LogCore> core)
      : pool_(std::move(pool)), core_(std::move(core)) {}
  LogCore& core() { return *core_; }
  const LogCore& core() const { return *core_; }

 private:
  std::unique_ptr<LogPool> pool_;  // Outlives core_ (declared first).
  std::unique_ptr<LogCore> core_;
};

absl::StatusOr<std::unique_ptr<PmemLog>> PmemLog::Open(const LogOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("pmemlog: empty pool path");
  if (options.pool_bytes < format::kPoolBytesMin || options.pool_bytes > format::kPoolBytesMax) {
    return absl::InvalidArgumentError(absl::StrFormat("pmemlog: pool_bytes %d outside [%d, %d]",
                                                      options.pool_bytes, format::kPoolBytesMin,
                                                      format::kPoolBytesMax));
  }
  const Identity identity{options.cluster_id, options.node_id};
  struct stat st;
  if (stat(options.path.c_str(), &st) != 0) {
    if (!options.create_if_missing) {
      return absl::NotFoundError(absl::StrFormat("pmemlog pool %s does not exist", options.path));
    }
    if (absl::Status s = LogPool::Create(options.path, options.pool_bytes, identity); !s.ok()) {
      return s;
    }
  }
  absl::StatusOr<std::unique_ptr<LogPool>> pool = LogPool::Open(options.path);
  if (!pool.ok()) return pool.status();
  absl::StatusOr<std::unique_ptr<LogCore>> core =
      LogCore::Open((*pool)->persistence(), (*pool)->meta_offset(), identity);
  if (!core.ok()) return core.status();
  if (absl::Status s = (*pool)->CheckRing((*core)->header()); !s.ok()) return s;
  (*pool)->PrefaultRing((*core)->header());
  return std::unique_ptr<PmemLog>(
      new PmemLog(std::make_unique<Impl>(std::move(*pool), std::move(*core))));
}

PmemLog::PmemLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PmemLog::~PmemLog() = default;

absl::Status PmemLog::Append(absl::Span<const LogEntry> entries) {
  return impl_->core().Append(entries);
}
absl::Status PmemLog::TruncateSuffix(uint64_t from) { return impl_->core().TruncateSuffix(from); }
absl::Status PmemLog::CompactPrefix(uint64_t upto) { return impl_->core().CompactPrefix(upto); }
absl::Status PmemLog::Reset(uint64_t snapshot_index, uint64_t snapshot_term) {
  return impl_->core().Reset(snapshot_index, snapshot_term);
}
absl::Status PmemLog::SetHardState(const HardState& state) {
  return impl_->core().SetHardState(state);
}
HardState PmemLog::GetHardState() const { return impl_->core().GetHardState(); }
uint64_t PmemLog::FirstIndex() const { return impl_->core().FirstIndex(); }
uint64_t PmemLog::LastIndex() const { return impl_->core().LastIndex(); }
absl::StatusOr<uint64_t> PmemLog::TermAt(uint64_t index) const {
  return impl_->core().TermAt(index);
}
absl::StatusOr<LogEntry> PmemLog::Read(uint64_t index) const { return impl_->core().Read(index); }
LogStats PmemLog::Stats() const { return impl_->core().Stats(); }
uint64_t PmemLog::BytesUsed() const { return impl_->core().BytesUsed(); }
uint64_t PmemLog::BytesCapacity() const { return impl_->core().BytesCapacity(); }

}  // namespace blizzard::pmemlog
