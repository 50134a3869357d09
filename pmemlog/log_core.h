// The Raft log and hard state over any Persistence (FORMAT.md sections 2-5):
// the whole logic of pmemlog except opening the libpmemobj pool. PmemLog
// (pmem_log.h) runs it over a pool through libpmem; the crash tests run the
// very same code over SimPersistence and a plain buffer.
//
// Method contracts are PmemLog's (pmem_log.h). Not thread-safe.
#ifndef BLIZZARD_PMEMLOG_LOG_CORE_H_
#define BLIZZARD_PMEMLOG_LOG_CORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "pmemlog/entry_index.h"
#include "pmemlog/log_format.h"
#include "pmemlog/log_reader.h"
#include "pmemlog/log_types.h"
#include "pmemlog/persistence.h"

namespace blizzard::pmemlog {

// Where the meta block and the ring sit inside the persistence's region.
struct RegionLayout {
  uint64_t meta_offset = 0;  // Multiple of 64.
  uint64_t ring_offset = 0;  // Multiple of 64.
  uint64_t ring_bytes = 0;   // Multiple of 64, in [kRingBytesMin, kRingBytesMax].
};

class LogCore {
 public:
  // Writes an empty log (header, tail, first state slot) and persists it.
  // InvalidArgument if the layout does not fit the region.
  static absl::Status Format(Persistence* persistence, const RegionLayout& layout,
                             const Identity& identity);

  // Recovers the log whose meta block is at `meta_offset` (FORMAT.md section
  // 5). Writes nothing. `persistence` must outlive the returned object.
  static absl::StatusOr<std::unique_ptr<LogCore>> Open(Persistence* persistence,
                                                       uint64_t meta_offset,
                                                       const std::optional<Identity>& expected);

  absl::Status Append(absl::Span<const LogEntry> entries);
  absl::Status TruncateSuffix(uint64_t from);
  absl::Status CompactPrefix(uint64_t upto);
  absl::Status Reset(uint64_t snapshot_index, uint64_t snapshot_term);
  absl::Status SetHardState(const HardState& state);
  HardState GetHardState() const;

  uint64_t FirstIndex() const { return state_.first_index; }
  uint64_t LastIndex() const { return state_.first_index + index_.size() - 1; }
  absl::StatusOr<uint64_t> TermAt(uint64_t index) const;
  absl::StatusOr<LogEntry> Read(uint64_t index) const;

  LogStats Stats() const { return stats_; }
  uint64_t BytesUsed() const { return tail_ - state_.head; }
  uint64_t BytesCapacity() const { return ring_.bytes - format::kTailSlackBytes; }
  const format::Header& header() const { return header_; }

 private:
  LogCore(Persistence* persistence, uint64_t meta_offset, const DecodedMeta& meta);

  // Logical offset of entry `index` (FirstIndex() <= index <= LastIndex() + 1).
  uint64_t OffsetOf(uint64_t index) const;
  absl::Status ValidateBatch(absl::Span<const LogEntry> entries) const;
  // Writing a batch (log_core.cc explains why whole lines): BeginStage at
  // the batch's logical start, StageRecord per entry, FinishStage at its end.
  void BeginStage(uint64_t start);
  void StageRecord(const LogEntry& entry, uint64_t offset);
  void StageBytes(const void* src, uint64_t len);
  // Streams the stage's whole lines; its partial last line stays staged.
  void StreamStageLines();
  void FinishStage(uint64_t end);
  // Whole lines at a line-aligned logical offset, non-temporal, no fence.
  void RingStreamNoDrain(uint64_t logical, const void* src, uint64_t len);
  // Any bytes (ordinary stores + flush), no fence.
  void RingCopyNoDrain(uint64_t logical, const void* src, uint64_t len);
  // Stores and persists the tail word for logical `tail`; drops index entries
  // past it.
  void PublishTail(uint64_t tail);
  // Persists `next` (sequence and checksum filled in here) into the inactive
  // slot and makes it the active one.
  void WriteSlot(format::StateSlot next);

  Persistence* const persistence_;
  format::MetaBlock* const meta_;
  const format::Header header_;
  const RingView ring_;
  uint8_t* const ring_base_;  // Writable alias of ring_.base.
  int active_slot_;
  format::StateSlot state_;  // Copy of the active slot.
  uint64_t tail_;            // Logical.
  EntryIndex index_;
  LogStats stats_;
  // The batch being written: stage_ holds the ring's bytes from stage_offset_
  // (a multiple of 64) to stage_offset_ + stage_used_.
  std::vector<uint8_t> stage_;
  uint64_t stage_used_ = 0;
  uint64_t stage_offset_ = 0;
  uint64_t batch_start_ = 0;  // Logical offset of the batch's first record.
  // A copy of the ring's line at carry_offset_: the line the last batch
  // ended in, so the next batch rewrites it whole without reading it.
  // kNoCarry until the first append after recovery.
  static constexpr uint64_t kNoCarry = ~0ull;
  uint64_t carry_offset_ = kNoCarry;
  uint8_t carry_[format::kCacheLineBytes] = {};
};

}  // namespace blizzard::pmemlog

#endif  // BLIZZARD_PMEMLOG_LOG_CORE_H_
