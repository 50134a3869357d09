// The Raft log and hard state in persistent memory.
//
// On-media format: pmemlog/FORMAT.md. Every entry carries a checksum over its
// header and payload. Appends of a batch cost one persist fence for the
// entries plus one 8-byte publish of the new tail.
//
// Durability contract: when Append/TruncateSuffix/CompactPrefix/
// SetHardState return OK, their effect survives a crash (power loss) at any
// later instant. Not thread-safe: one owner (the node's event loop).
#ifndef BLIZZARD_PMEMLOG_PMEM_LOG_H_
#define BLIZZARD_PMEMLOG_PMEM_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

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

struct LogOptions {
  std::string path;                      // Pool file (e.g. under /dev/shm).
  uint64_t pool_bytes = 256ull << 20;    // Size when creating.
  uint64_t cluster_id = 0;               // Checked on open.
  uint64_t node_id = 0;                  // Checked on open.
  bool create_if_missing = true;
};

struct LogStats {
  uint64_t appends = 0;          // Append calls.
  uint64_t entries_appended = 0;
  uint64_t bytes_persisted = 0;  // Bytes flushed to pmem (entries + metadata).
  uint64_t fences = 0;
};

class PmemLog {
 public:
  // Opens (or creates) the log and runs recovery. Errors:
  //   NotFound          pool missing and !create_if_missing
  //   FailedPrecondition pool of another format version, cluster or node
  //   DataLoss          a checksum failure before the published tail
  //                     (the message names the index): refuse to serve
  //   InvalidArgument   bad options
  static absl::StatusOr<std::unique_ptr<PmemLog>> Open(const LogOptions& options);
  ~PmemLog();

  // Appends contiguous entries. If entries.front().index <= LastIndex(), the
  // stored suffix from that index is truncated first (Raft conflict). Entry
  // indices must be contiguous and entries.front().index <= LastIndex() + 1
  // and > the compaction point (InvalidArgument otherwise).
  // ResourceExhausted when the log is full (compact first).
  absl::Status Append(absl::Span<const LogEntry> entries);

  // Removes entries with index >= `from`.
  absl::Status TruncateSuffix(uint64_t from);

  // Discards entries with index < `upto` (they are in a snapshot); remembers
  // the term of entry upto-1 so TermAt(upto-1) still answers.
  absl::Status CompactPrefix(uint64_t upto);

  absl::Status SetHardState(const HardState& state);
  HardState GetHardState() const;

  uint64_t FirstIndex() const;  // 1 for a never-compacted log.
  uint64_t LastIndex() const;   // FirstIndex() - 1 when empty.
  // Term of entry i for i in [FirstIndex()-1, LastIndex()]; OutOfRange else.
  absl::StatusOr<uint64_t> TermAt(uint64_t index) const;
  // Reads entry i, verifying its checksum (DataLoss on mismatch).
  absl::StatusOr<LogEntry> Read(uint64_t index) const;

  LogStats Stats() const;
  uint64_t BytesUsed() const;
  uint64_t BytesCapacity() const;

 private:
  class Impl;
  explicit PmemLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace blizzard::pmemlog

#endif  // BLIZZARD_PMEMLOG_PMEM_LOG_H_
