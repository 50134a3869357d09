// Plain values of the pmemlog API, shared by the public PmemLog (pmem_log.h)
// and the log core that runs over any persistence (log_core.h).
#ifndef BLIZZARD_PMEMLOG_LOG_TYPES_H_
#define BLIZZARD_PMEMLOG_LOG_TYPES_H_

#include <cstdint>
#include <string>

namespace blizzard::pmemlog {

struct LogEntry {
  uint64_t index = 0;
  uint64_t term = 0;
  uint8_t type = 0;  // Opaque to pmemlog (consensus::EntryType).
  std::string payload;
  bool operator==(const LogEntry&) const = default;
};

struct HardState {
  uint64_t term = 0;
  uint64_t vote = 0;
  uint64_t commit = 0;
  bool operator==(const HardState&) const = default;
};

struct LogStats {
  uint64_t appends = 0;  // Append calls.
  uint64_t entries_appended = 0;
  uint64_t bytes_persisted = 0;  // Bytes flushed to pmem (entries + metadata).
  uint64_t fences = 0;
};

}  // namespace blizzard::pmemlog

#endif  // BLIZZARD_PMEMLOG_LOG_TYPES_H_
