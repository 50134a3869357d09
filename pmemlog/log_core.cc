#include "pmemlog/log_core.h"

#include <algorithm>
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
  stage_offset_ = start;
  stage_used_ = 0;
  uint64_t offset = start;
  for (const LogEntry& e : entries) {
    StageRecord(e, offset);
    index_.PushBack({offset, e.term});
    offset += RecordBytes(e.payload.size());
  }
  FlushStage();
  ABSL_RAW_CHECK(stage_offset_ == offset && offset - start == batch_bytes,
                 "staged bytes differ from the batch size");
  persistence_->Drain();  // The records are durable before the tail names them.
  ++stats_.fences;
  PublishTail(offset);
  ++stats_.appends;
  stats_.entries_appended += entries.size();
  stats_.bytes_persisted += batch_bytes;
  ABSL_RAW_CHECK(LastIndex() == entries.back().index, "append did not end at the last entry");
  return absl::OkStatus();
}

void LogCore::StageRecord(const LogEntry& entry, uint64_t offset) {
  format::RecordHeader h{};
  h.index = entry.index;
  h.term = entry.term;
  h.payload_bytes = static_cast<uint32_t>(entry.payload.size());
  h.type = entry.type;
  const absl::Span<const uint8_t> payload(reinterpret_cast<const uint8_t*>(entry.payload.data()),
                                          entry.payload.size());
  h.checksum = format::RecordChecksum(h, offset, payload);
  static constexpr uint8_t kZeros[format::kRecordAlignBytes] = {};
  StageBytes(&h, sizeof(h));
  StageBytes(payload.data(), payload.size());
  StageBytes(kZeros, RecordBytes(payload.size()) - kRecordHeaderBytes - payload.size());
}

void LogCore::StageBytes(const void* src, uint64_t len) {
  if (len >= format::kDirectCopyBytesMin) {
    FlushStage();
    RingCopyNoDrain(stage_offset_, src, len);
    stage_offset_ += len;
    return;
  }
  if (stage_used_ + len > stage_.size()) FlushStage();
  std::memcpy(stage_.data() + stage_used_, src, len);
  stage_used_ += len;
}

void LogCore::FlushStage() {
  if (stage_used_ == 0) return;
  RingCopyNoDrain(stage_offset_, stage_.data(), stage_used_);
  stage_offset_ += stage_used_;
  stage_used_ = 0;
}

void LogCore::RingCopyNoDrain(uint64_t logical, const void* src, uint64_t len) {
  ABSL_RAW_CHECK(logical >= state_.head && logical + len <= state_.head + BytesCapacity(),
                 "writing outside the free space of the ring");
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
  persistence_->Store64(&meta_->tail_word, word);
  persistence_->Persist(&meta_->tail_word, sizeof(word));
  ABSL_RAW_CHECK(format::DecodeTail(meta_->tail_word, ring_.bytes) == ring_.Phys(tail),
                 "tail word does not read back");
  tail_ = tail;
  ++stats_.fences;
  stats_.bytes_persisted += sizeof(word);
}

void LogCore::WriteSlot(format::StateSlot next) {
  next.sequence = state_.sequence + 1;
  next.checksum = format::SlotChecksum(next);
  const int target = 1 - active_slot_;
  persistence_->Store(&meta_->slots[target], &next, sizeof(next));
  persistence_->Persist(&meta_->slots[target], sizeof(next));
  ABSL_RAW_CHECK(SlotValid(meta_->slots[target]), "state slot does not read back");
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
