#include "pmemlog/log_core.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"

namespace blizzard::pmemlog {

using format::kRecordHeaderBytes;
using format::RecordBytes;

absl::Status LogCore::Format(Persistence* persistence, const RegionLayout& layout,
                             const Identity& identity) {
  const uint64_t region = persistence->size_bytes();
  const bool meta_fits =
      layout.meta_offset <= region && region - layout.meta_offset >= format::kMetaBytes;
  const bool ring_fits =
      layout.ring_offset <= region && region - layout.ring_offset >= layout.ring_bytes;
  const bool overlap = layout.ring_offset < layout.meta_offset + format::kMetaBytes &&
                       layout.meta_offset < layout.ring_offset + layout.ring_bytes;
  if (layout.meta_offset % format::kMetaAlignBytes != 0 ||
      layout.ring_offset % format::kRingAlignBytes != 0 ||
      layout.ring_bytes % format::kRingAlignBytes != 0 ||
      layout.ring_bytes < format::kRingBytesMin || layout.ring_bytes > format::kRingBytesMax ||
      !meta_fits || !ring_fits || overlap) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "pmemlog layout (meta %d, ring [%d, +%d)) does not fit a region of %d bytes",
        layout.meta_offset, layout.ring_offset, layout.ring_bytes, region));
  }
  format::MetaBlock block;
  std::memset(&block, 0, sizeof(block));
  block.header.magic = format::kMagic;
  block.header.format_version = format::kFormatVersion;
  block.header.meta_bytes = format::kMetaBytes;
  block.header.cluster_id = identity.cluster_id;
  block.header.node_id = identity.node_id;
  block.header.ring_offset = layout.ring_offset;
  block.header.ring_bytes = layout.ring_bytes;
  block.header.checksum = format::HeaderChecksum(block.header);
  block.tail_word = format::EncodeTail(0);
  format::StateSlot& first = block.slots[0];
  first.sequence = 1;
  first.first_index = 1;
  first.checksum = format::SlotChecksum(first);
  uint8_t* meta = persistence->base() + layout.meta_offset;
  persistence->Store(meta, &block, sizeof(block));
  persistence->Persist(meta, sizeof(block));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LogCore>> LogCore::Open(Persistence* persistence,
                                                       uint64_t meta_offset,
                                                       const std::optional<Identity>& expected) {
  absl::StatusOr<DecodedMeta> meta =
      DecodeMeta(persistence->base(), persistence->size_bytes(), meta_offset, expected);
  if (!meta.ok()) return meta.status();
  std::unique_ptr<LogCore> core(new LogCore(persistence, meta_offset, *meta));
  absl::Status walk =
      WalkRecords(*meta, /*continue_after_damage=*/false, [&core](const WalkedRecord& r) {
        if (r.status.ok()) {
          core->index_.PushBack({r.offset, r.header.term});
        }
      });
  if (!walk.ok()) return walk;
  ABSL_RAW_CHECK(core->OffsetOf(core->LastIndex() + 1) == core->tail_,
                 "recovered index does not end at the tail");
  return core;
}

LogCore::LogCore(Persistence* persistence, uint64_t meta_offset, const DecodedMeta& meta)
    : persistence_(persistence),
      meta_(reinterpret_cast<format::MetaBlock*>(persistence->base() + meta_offset)),
      header_(meta.header),
      ring_(meta.ring),
      ring_base_(persistence->base() + meta.header.ring_offset),
      active_slot_(meta.active_slot),
      state_(meta.state),
      tail_(meta.tail),
      stage_(format::kStageBytes) {}

uint64_t LogCore::OffsetOf(uint64_t index) const {
  ABSL_RAW_CHECK(index >= FirstIndex() && index <= LastIndex() + 1, "offset of a foreign index");
  return index == LastIndex() + 1 ? tail_ : index_[index - FirstIndex()].offset;
}

absl::Status LogCore::ValidateBatch(absl::Span<const LogEntry> entries) const {
  if (entries.size() > format::kBatchEntriesMax) {
    return absl::InvalidArgumentError(absl::StrFormat("batch of %d entries exceeds the limit of %d",
                                                      entries.size(), format::kBatchEntriesMax));
  }
  const uint64_t front = entries.front().index;
  if (front < FirstIndex() || front > LastIndex() + 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot append at index %d: the log holds [%d, %d]", front, FirstIndex(), LastIndex()));
  }
  uint64_t prev_term = *TermAt(front - 1);
  for (size_t i = 0; i < entries.size(); ++i) {
    const LogEntry& e = entries[i];
    if (e.index != front + i) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "batch is not contiguous: entry %d follows index %d", e.index, front + i - 1));
    }
    if (e.payload.size() > format::kPayloadBytesMax) {
      return absl::InvalidArgumentError(
          absl::StrFormat("entry %d: payload of %d bytes exceeds the limit of %d", e.index,
                          e.payload.size(), format::kPayloadBytesMax));
    }
    if (e.term < prev_term) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "entry %d: term %d is below the previous entry's term %d", e.index, e.term, prev_term));
    }
    prev_term = e.term;
  }
  return absl::OkStatus();
}

absl::Status LogCore::Append(absl::Span<const LogEntry> entries) {
  if (entries.empty()) return absl::OkStatus();
  if (absl::Status s = ValidateBatch(entries); !s.ok()) return s;
  uint64_t batch_bytes = 0;
  for (const LogEntry& e : entries) batch_bytes += RecordBytes(e.payload.size());
  if (batch_bytes > BytesCapacity()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "batch of %d bytes can never fit a log of %d bytes", batch_bytes, BytesCapacity()));
  }
  const uint64_t from = entries.front().index;
  const uint64_t start = OffsetOf(from);
  if (start - state_.head + batch_bytes > BytesCapacity()) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "pmemlog full: %d of %d bytes in use, the batch needs %d more; compact first",
        start - state_.head, BytesCapacity(), batch_bytes));
  }
  if (from <= LastIndex()) {
    // A Raft conflict: the truncation is published before any byte of the
    // old entries is overwritten, so no crash can expose a half-rewritten
    // record before the published tail (FORMAT.md section 4).
    PublishTail(start);
    index_.PopBack(LastIndex() - from + 1);
  }
  BeginStage(start);
  uint64_t offset = start;
  for (const LogEntry& e : entries) {
    StageRecord(e, offset);
    index_.PushBack({offset, e.term});
    offset += RecordBytes(e.payload.size());
  }
  ABSL_RAW_CHECK(offset - start == batch_bytes, "staged records differ from the batch size");
  FinishStage(offset);
  persistence_->Drain();  // The records are durable before the tail names them.
  ++stats_.fences;
  PublishTail(offset);
  ++stats_.appends;
  stats_.entries_appended += entries.size();
  stats_.bytes_persisted += batch_bytes;
  ABSL_RAW_CHECK(LastIndex() == entries.back().index, "append did not end at the last entry");
  return absl::OkStatus();
}

namespace {
// A record header's four words as four 8-byte stores. Not a local array
// copied with memcpy: the compiler builds such an array with 8-byte stores
// and copies it with 16-byte loads, which the store buffer cannot forward
// (perf annotate put two thirds of StageRecord's samples on that copy).
inline void StoreHeaderWords(uint8_t* at, uint64_t w0, uint64_t w1, uint64_t w2, uint64_t w3) {
  std::memcpy(at, &w0, sizeof(w0));
  std::memcpy(at + 8, &w1, sizeof(w1));
  std::memcpy(at + 16, &w2, sizeof(w2));
  std::memcpy(at + 24, &w3, sizeof(w3));
}
}  // namespace

void LogCore::StageRecord(const LogEntry& entry, uint64_t offset) {
  const uint8_t* payload = reinterpret_cast<const uint8_t*>(entry.payload.data());
  uint64_t n = entry.payload.size();
  const uint64_t record_bytes = RecordBytes(n);
  // The header as the four words RecordHeader lays out (reserved bytes zero),
  // built in registers: no field-by-field stores read back as words.
  const uint64_t word2 = n | (uint64_t{entry.type} << 32);
  const uint64_t checksum =
      format::RecordChecksumOf(entry.index, entry.term, static_cast<uint32_t>(n), entry.type,
                               offset, format::RecordPayloadHash({payload, n}));
  static_assert(sizeof(format::RecordHeader) == 4 * sizeof(uint64_t) &&
                offsetof(format::RecordHeader, payload_bytes) == 16 &&
                offsetof(format::RecordHeader, type) == 20 &&
                offsetof(format::RecordHeader, checksum) == 24);
  if (n < format::kDirectCopyBytesMin) {
    // The common small record: written into the stage in one piece (after
    // making room), with no per-piece bookkeeping. Its bytes past the
    // payload are zero padding; the last word is zeroed before the payload
    // lands on its first bytes.
    static_assert(format::kStageBytes >=
                  format::kCacheLineBytes + format::RecordBytes(format::kDirectCopyBytesMin));
    if (stage_.size() - stage_used_ < record_bytes) StreamStageLines();
    uint8_t* const at = stage_.data() + stage_used_;
    StoreHeaderWords(at, entry.index, entry.term, word2, checksum);
    if (n % format::kRecordAlignBytes != 0) {
      const uint64_t zero = 0;
      std::memcpy(at + record_bytes - format::kRecordAlignBytes, &zero, sizeof(zero));
    }
    std::memcpy(at + kRecordHeaderBytes, payload, n);
    stage_used_ += record_bytes;
    return;
  }
  static constexpr uint8_t kZeros[format::kRecordAlignBytes] = {};
  const uint64_t padding = record_bytes - kRecordHeaderBytes - n;
  if (stage_.size() - stage_used_ < kRecordHeaderBytes) StreamStageLines();
  StoreHeaderWords(stage_.data() + stage_used_, entry.index, entry.term, word2, checksum);
  stage_used_ += kRecordHeaderBytes;
  // Complete the stage's partial line from the payload and stream the
  // stage, then stream the payload's whole-line middle straight from the
  // caller's buffer; the rest is staged below.
  const uint64_t fill =
      (format::kCacheLineBytes - stage_used_ % format::kCacheLineBytes) % format::kCacheLineBytes;
  StageBytes(payload, fill);
  payload += fill;
  n -= fill;
  StreamStageLines();
  ABSL_RAW_CHECK(stage_used_ == 0, "stage not empty before a direct copy");
  const uint64_t middle = format::RoundDown(n, format::kCacheLineBytes);
  RingStreamNoDrain(stage_offset_, payload, middle);
  stage_offset_ += middle;
  payload += middle;
  n -= middle;
  StageBytes(payload, n);
  StageBytes(kZeros, padding);
}

// Why the staging: on x86 a cache line written with ordinary stores is first
// read from memory (read for ownership), and a line flushed by the previous
// append is read again if this append writes into it. Both cost a memory
// round trip per line on cold memory. So the ring is written only in whole
// cache lines with non-temporal stores: small records are gathered in the
// stage, the whole-line middle of a large payload streams straight from the
// caller's buffer (StageRecord), and the line the previous batch ended in is
// rewritten whole from carry_ (its bytes before the tail are unchanged, so a
// torn rewrite leaves them as they were).

void LogCore::BeginStage(uint64_t start) {
  const uint64_t line = format::RoundDown(start, format::kCacheLineBytes);
  if (carry_offset_ != line) {
    // After recovery or a truncation: one read of the line.
    ring_.Read(line, carry_, start - line);
    carry_offset_ = line;
  }
  stage_offset_ = line;
  stage_used_ = start - line;
  std::memcpy(stage_.data(), carry_, stage_used_);
  batch_start_ = start;
}

void LogCore::StageBytes(const void* src, uint64_t len) {
  const uint8_t* from = static_cast<const uint8_t*>(src);
  while (len > 0) {
    if (stage_used_ == stage_.size()) StreamStageLines();
    const uint64_t n = std::min(len, stage_.size() - stage_used_);
    std::memcpy(stage_.data() + stage_used_, from, n);
    stage_used_ += n;
    from += n;
    len -= n;
  }
}

void LogCore::StreamStageLines() {
  const uint64_t lines = format::RoundDown(stage_used_, format::kCacheLineBytes);
  if (lines == 0) return;
  RingStreamNoDrain(stage_offset_, stage_.data(), lines);
  const uint64_t rest = stage_used_ - lines;  // The partial last line moves to the front.
  std::memmove(stage_.data(), stage_.data() + lines, rest);
  stage_offset_ += lines;
  stage_used_ = rest;
}

void LogCore::FinishStage(uint64_t end) {
  ABSL_RAW_CHECK(stage_offset_ + stage_used_ == end, "stage does not end at the batch end");
  const uint64_t line = format::RoundDown(end, format::kCacheLineBytes);
  const uint64_t line_end = line + format::kCacheLineBytes;
  if (end == line) {
    StreamStageLines();
  } else if (line_end <= state_.head + ring_.bytes) {
    // The rest of the last line is free space (its bytes are ignored): pad
    // with zeros and stream it whole.
    std::memset(stage_.data() + stage_used_, 0, line_end - end);
    stage_used_ += line_end - end;
    std::memcpy(carry_, stage_.data() + stage_used_ - format::kCacheLineBytes,
                format::kCacheLineBytes);
    StreamStageLines();
  } else {
    // The ring is so full that the head's live bytes share the last line:
    // write exactly the batch's bytes of it.
    StreamStageLines();
    ABSL_RAW_CHECK(stage_offset_ == line && stage_used_ == end - line, "stage is not one line");
    std::memcpy(carry_, stage_.data(), stage_used_);
    RingCopyNoDrain(line, stage_.data(), stage_used_);
    stage_offset_ = end;
    stage_used_ = 0;
  }
  ABSL_RAW_CHECK(stage_used_ == 0, "stage not empty after the batch");
  carry_offset_ = line;
}

void LogCore::RingStreamNoDrain(uint64_t logical, const void* src, uint64_t len) {
  // From the line of the batch's start (its bytes before the start are
  // rewritten unchanged) to at most the head's position one lap later.
  ABSL_RAW_CHECK(logical % format::kCacheLineBytes == 0 && len % format::kCacheLineBytes == 0 &&
                     logical >= format::RoundDown(batch_start_, format::kCacheLineBytes) &&
                     logical + len <= state_.head + ring_.bytes,
                 "streaming outside the batch's lines");
  const uint64_t phys = ring_.Phys(logical);
  const uint64_t first = std::min(len, ring_.bytes - phys);  // Whole lines: ring_.bytes % 64 == 0.
  persistence_->StreamNoDrain(ring_base_ + phys, src, first);
  if (len > first) {
    persistence_->StreamNoDrain(ring_base_, static_cast<const uint8_t*>(src) + first, len - first);
  }
}

void LogCore::RingCopyNoDrain(uint64_t logical, const void* src, uint64_t len) {
  ABSL_RAW_CHECK(logical >= format::RoundDown(batch_start_, format::kCacheLineBytes) &&
                     logical + len <= state_.head + BytesCapacity(),
                 "writing outside the batch's lines");
  const uint64_t phys = ring_.Phys(logical);
  const uint64_t first = std::min(len, ring_.bytes - phys);
  persistence_->CopyNoDrain(ring_base_ + phys, src, first);
  if (len > first) {
    persistence_->CopyNoDrain(ring_base_, static_cast<const uint8_t*>(src) + first, len - first);
  }
}

void LogCore::PublishTail(uint64_t tail) {
  ABSL_RAW_CHECK(tail >= state_.head && tail - state_.head <= BytesCapacity(),
                 "publishing a tail outside the ring");
  const uint64_t word = format::EncodeTail(ring_.Phys(tail));
  // Checked before it is written rather than read back: the non-temporal
  // store leaves the line out of the cache, so a read-back would cost a
  // memory round trip on every append. Recovery decodes it in full.
  ABSL_RAW_CHECK(format::DecodeTail(word, ring_.bytes) == ring_.Phys(tail),
                 "tail word does not encode the tail");
  persistence_->Store64NoDrain(&meta_->tail_word, word);
  persistence_->Drain();
  tail_ = tail;
  ++stats_.fences;
  stats_.bytes_persisted += sizeof(word);
}

void LogCore::WriteSlot(format::StateSlot next) {
  next.sequence = state_.sequence + 1;
  next.checksum = format::SlotChecksum(next);
  const int target = 1 - active_slot_;
  // The slot is one whole cache line: streamed, never read back (see
  // PublishTail), checked before it is written.
  static_assert(sizeof(next) == format::kCacheLineBytes);
  ABSL_RAW_CHECK(SlotValid(next), "state slot does not verify");
  persistence_->StreamNoDrain(&meta_->slots[target], &next, sizeof(next));
  persistence_->Drain();
  active_slot_ = target;
  state_ = next;
  ++stats_.fences;
  stats_.bytes_persisted += sizeof(next);
}

absl::Status LogCore::TruncateSuffix(uint64_t from) {
  if (from < FirstIndex()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot truncate from %d: entries below %d are compacted", from, FirstIndex()));
  }
  if (from > LastIndex()) return absl::OkStatus();
  PublishTail(OffsetOf(from));
  index_.PopBack(LastIndex() - from + 1);
  ABSL_RAW_CHECK(LastIndex() == from - 1, "truncation left the wrong last index");
  return absl::OkStatus();
}

absl::Status LogCore::CompactPrefix(uint64_t upto) {
  if (upto <= FirstIndex()) return absl::OkStatus();
  if (upto > LastIndex() + 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot compact up to %d: the log ends at %d (use Reset for a newer snapshot)", upto,
        LastIndex()));
  }
  const uint64_t old_first = FirstIndex();
  format::StateSlot next = state_;
  next.head = OffsetOf(upto);
  next.prev_term = *TermAt(upto - 1);
  next.first_index = upto;
  WriteSlot(next);
  index_.PopFront(upto - old_first);
  ABSL_RAW_CHECK(index_.empty() ? tail_ == state_.head : index_[0].offset == state_.head,
                 "compaction left the head off the first entry");
  return absl::OkStatus();
}

absl::Status LogCore::Reset(uint64_t snapshot_index, uint64_t snapshot_term) {
  if (snapshot_index >= (1ull << 62)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("snapshot index %d is out of range", snapshot_index));
  }
  if (snapshot_index + 1 < FirstIndex()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot reset to snapshot %d: entries up to %d are already compacted",
                        snapshot_index, FirstIndex() - 1));
  }
  format::StateSlot next = state_;
  next.head = tail_;
  next.first_index = snapshot_index + 1;
  next.prev_term = snapshot_term;
  WriteSlot(next);
  index_.Clear();
  return absl::OkStatus();
}

absl::Status LogCore::SetHardState(const HardState& hs) {
  const HardState current = GetHardState();
  if (hs == current) return absl::OkStatus();
  if (hs.term < current.term) {
    return absl::InvalidArgumentError(
        absl::StrFormat("hard state term %d is below the stored term %d", hs.term, current.term));
  }
  if (hs.term == current.term && current.vote != 0 && hs.vote != current.vote) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vote for %d in term %d, which already voted for %d", hs.vote, hs.term, current.vote));
  }
  format::StateSlot next = state_;
  next.term = hs.term;
  next.vote = hs.vote;
  next.commit = hs.commit;
  WriteSlot(next);
  return absl::OkStatus();
}

HardState LogCore::GetHardState() const {
  return HardState{state_.term, state_.vote, state_.commit};
}

absl::StatusOr<uint64_t> LogCore::TermAt(uint64_t index) const {
  if (index + 1 == FirstIndex()) return state_.prev_term;
  if (index < FirstIndex() || index > LastIndex()) {
    return absl::OutOfRangeError(absl::StrFormat("term of %d: the log holds terms of [%d, %d]",
                                                 index, FirstIndex() - 1, LastIndex()));
  }
  return index_[index - FirstIndex()].term;
}

absl::StatusOr<LogEntry> LogCore::Read(uint64_t index) const {
  if (index < FirstIndex() || index > LastIndex()) {
    return absl::OutOfRangeError(
        absl::StrFormat("read of %d: the log holds [%d, %d]", index, FirstIndex(), LastIndex()));
  }
  const IndexedEntry& at = index_[index - FirstIndex()];
  const uint64_t end = OffsetOf(index + 1);
  LogEntry entry;
  WalkedRecord r = CheckRecord(ring_, at.offset, index, end, &entry.payload, nullptr);
  if (!r.status.ok()) return r.status;
  if (r.header.term != at.term || at.offset + RecordBytes(r.header.payload_bytes) != end) {
    return absl::DataLossError(absl::StrFormat(
        "pmemlog entry %d at log offset %d changed on the media since recovery", index, at.offset));
  }
  entry.index = index;
  entry.term = r.header.term;
  entry.type = r.header.type;
  return entry;
}

}  // namespace blizzard::pmemlog
