// The libpmemobj container of a pmemlog (FORMAT.md section 1): creating a
// pool crash-safely, opening one with clear errors, and locating the meta
// block and the ring inside the pool's mapping for the log core.
#ifndef BLIZZARD_PMEMLOG_LOG_POOL_H_
#define BLIZZARD_PMEMLOG_LOG_POOL_H_

#include <libpmemobj.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pmemlog/log_format.h"
#include "pmemlog/log_reader.h"
#include "pmemlog/pmem_persistence.h"

namespace blizzard::pmemlog {

class LogPool {
 public:
  // Creates a pool of `pool_bytes` at `path` holding an empty log: built
  // under `<path>.creating` and renamed into place once complete, so `path`
  // never names a half-made pool. AlreadyExists if `path` exists.
  static absl::Status Create(const std::string& path, uint64_t pool_bytes,
                             const Identity& identity);

  // Opens the pool at `path` (no log recovery yet). Errors: NotFound;
  // FailedPrecondition for a file that is not a pmemobj pool, a pool of
  // another layout, or one open in another process; DataLoss for a pool
  // libpmemobj cannot open (e.g. a truncated file) or without a log root.
  static absl::StatusOr<std::unique_ptr<LogPool>> Open(const std::string& path);

  ~LogPool();
  LogPool(const LogPool&) = delete;
  LogPool& operator=(const LogPool&) = delete;

  // The whole pool mapping as a persistence region.
  Persistence* persistence() { return &persistence_; }
  uint64_t meta_offset() const { return meta_offset_; }
  // DataLoss unless the ring the header names lies inside the pool's ring
  // allocation (the root's PMEMoid).
  absl::Status CheckRing(const format::Header& header) const;
  // Maps every page of the ring writable now (MADV_POPULATE_WRITE, else by
  // touching each page), so appends never take a first-touch page fault.
  // `header` must have passed CheckRing.
  void PrefaultRing(const format::Header& header);

 private:
  LogPool(PMEMobjpool* pool, uint64_t pool_bytes, uint64_t meta_offset);

  PMEMobjpool* const pool_;
  PmemPersistence persistence_;
  const uint64_t meta_offset_;
};

}  // namespace blizzard::pmemlog

#endif  // BLIZZARD_PMEMLOG_LOG_POOL_H_
