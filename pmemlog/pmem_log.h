// The Raft log and hard state in persistent memory.
//
// On-media format: pmemlog/FORMAT.md. Every entry carries a checksum over its
// header and payload. Appends of a batch cost one persist fence for the
// entries plus one 8-byte publish of the new tail.
//
// Durability contract: when Append/TruncateSuffix/CompactPrefix/Reset/
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
#include "pmemlog/log_types.h"  // LogEntry, HardState, LogStats.

namespace blizzard::pmemlog {

struct LogOptions {
  std::string path;                    // Pool file (e.g. under /dev/shm).
  uint64_t pool_bytes = 256ull << 20;  // Size when creating.
  uint64_t cluster_id = 0;             // Checked on open.
  uint64_t node_id = 0;                // Checked on open.
  bool create_if_missing = true;
};

class PmemLog {
 public:
  // Opens (or creates) the log and runs recovery. Errors:
  //   NotFound          pool missing and !create_if_missing
  //   FailedPrecondition pool of another format version, cluster or node;
  //                     a file that is not a pmemlog pool; a pool open in
  //                     another process
  //   DataLoss          a checksum failure before the published tail
  //                     (the message names the index), or a damaged header,
  //                     tail word, state slots or pool (e.g. truncated
  //                     file): refuse to serve
  //   InvalidArgument   bad options (empty path; pool_bytes outside
  //                     [format::kPoolBytesMin, format::kPoolBytesMax])
  static absl::StatusOr<std::unique_ptr<PmemLog>> Open(const LogOptions& options);
  ~PmemLog();

  // Appends contiguous entries. If entries.front().index <= LastIndex(), the
  // stored suffix from that index is truncated first (Raft conflict). Entry
  // indices must be contiguous and entries.front().index <= LastIndex() + 1
  // and > the compaction point (InvalidArgument otherwise). Also
  // InvalidArgument: more than format::kBatchEntriesMax entries, a payload
  // over format::kPayloadBytesMax, a term below its predecessor's, or a
  // batch larger than BytesCapacity(). An empty batch is a no-op.
  // ResourceExhausted when the log is full (compact first); nothing changes.
  absl::Status Append(absl::Span<const LogEntry> entries);

  // Removes entries with index >= `from`. No-op if from > LastIndex();
  // InvalidArgument if from < FirstIndex() (compacted entries are committed).
  absl::Status TruncateSuffix(uint64_t from);

  // Discards entries with index < `upto` (they are in a snapshot); remembers
  // the term of entry upto-1 so TermAt(upto-1) still answers. No-op if
  // upto <= FirstIndex(); InvalidArgument if upto > LastIndex() + 1.
  absl::Status CompactPrefix(uint64_t upto);

  // Discards the whole log because a snapshot covering `snapshot_index`
  // replaces it (Raft InstallSnapshot when the log is shorter or conflicts):
  // afterwards FirstIndex() == snapshot_index + 1, LastIndex() ==
  // snapshot_index, TermAt(snapshot_index) == snapshot_term. InvalidArgument
  // if snapshot_index < FirstIndex() - 1 (older than the compaction point).
  absl::Status Reset(uint64_t snapshot_index, uint64_t snapshot_term);

  // InvalidArgument if the term decreases, or the vote changes within a term
  // that already has one (Raft's one vote per term, checked at the boundary).
  // Setting the current state again writes nothing.
  absl::Status SetHardState(const HardState& state);
  HardState GetHardState() const;

  uint64_t FirstIndex() const;  // 1 for a never-compacted log.
  uint64_t LastIndex() const;   // FirstIndex() - 1 when empty.
  // Term of entry i for i in [FirstIndex()-1, LastIndex()]; OutOfRange else.
  absl::StatusOr<uint64_t> TermAt(uint64_t index) const;
  // Reads entry i, verifying its checksum (DataLoss on mismatch); OutOfRange
  // outside [FirstIndex(), LastIndex()].
  absl::StatusOr<LogEntry> Read(uint64_t index) const;

  LogStats Stats() const;
  uint64_t BytesUsed() const;      // Ring bytes of the live entries.
  uint64_t BytesCapacity() const;  // Ring bytes entries may occupy.

 private:
  class Impl;
  explicit PmemLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace blizzard::pmemlog

#endif  // BLIZZARD_PMEMLOG_PMEM_LOG_H_
