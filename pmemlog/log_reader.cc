#include "pmemlog/log_reader.h"

#include <algorithm>
#include <cstring>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"

namespace blizzard::pmemlog {

using format::kMetaBytes;
using format::kRecordHeaderBytes;

void RingView::Read(uint64_t logical, void* dst, uint64_t len) const {
  ABSL_RAW_CHECK(len <= bytes, "ring read longer than the ring");
  const uint64_t phys = Phys(logical);
  const uint64_t first = std::min(len, bytes - phys);
  std::memcpy(dst, base + phys, first);
  std::memcpy(static_cast<uint8_t*>(dst) + first, base, len - first);
}

const uint8_t* RingView::Contiguous(uint64_t logical, uint64_t len,
                                    std::vector<uint8_t>* scratch) const {
  const uint64_t phys = Phys(logical);
  if (len <= bytes - phys) return base + phys;
  scratch->resize(len);
  Read(logical, scratch->data(), len);
  return scratch->data();
}

bool SlotValid(const format::StateSlot& slot) {
  return slot.sequence >= 1 && format::SlotChecksum(slot) == slot.checksum;
}

absl::StatusOr<DecodedMeta> DecodeMeta(const uint8_t* region, uint64_t region_bytes,
                                       uint64_t meta_offset,
                                       const std::optional<Identity>& expected) {
  if (meta_offset % format::kMetaAlignBytes != 0 || meta_offset > region_bytes ||
      region_bytes - meta_offset < kMetaBytes) {
    return absl::DataLossError(
        absl::StrFormat("pmemlog meta block at offset %d does not fit a region of %d bytes",
                        meta_offset, region_bytes));
  }
  const auto* block = reinterpret_cast<const format::MetaBlock*>(region + meta_offset);
  DecodedMeta m;
  std::memcpy(&m.header, &block->header, sizeof(m.header));
  const format::Header& h = m.header;
  if (h.magic != format::kMagic) {
    return absl::DataLossError(absl::StrFormat(
        "pmemlog header: bad magic 0x%016x (expected 0x%016x)", h.magic, format::kMagic));
  }
  if (format::HeaderChecksum(h) != h.checksum) {
    return absl::DataLossError("pmemlog header: checksum mismatch (header damaged)");
  }
  if (h.format_version != format::kFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrFormat("pmemlog pool has format version %d; this build reads version %d only",
                        h.format_version, format::kFormatVersion));
  }
  if (h.meta_bytes != kMetaBytes || h.reserved != 0) {
    return absl::DataLossError("pmemlog header: bad meta size or reserved field");
  }
  if (expected.has_value() && h.cluster_id != expected->cluster_id) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "pmemlog pool belongs to cluster %d, not cluster %d", h.cluster_id, expected->cluster_id));
  }
  if (expected.has_value() && h.node_id != expected->node_id) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "pmemlog pool belongs to node %d, not node %d", h.node_id, expected->node_id));
  }
  const bool ring_in_region =
      h.ring_offset <= region_bytes && h.ring_bytes <= region_bytes - h.ring_offset;
  const bool overlaps_meta =
      h.ring_offset < meta_offset + kMetaBytes && meta_offset < h.ring_offset + h.ring_bytes;
  if (h.ring_bytes % format::kRingAlignBytes != 0 || h.ring_bytes < format::kRingBytesMin ||
      h.ring_bytes > format::kRingBytesMax || h.ring_offset % format::kRingAlignBytes != 0 ||
      !ring_in_region || overlaps_meta) {
    return absl::DataLossError(absl::StrFormat(
        "pmemlog header: ring [%d, +%d) is invalid for a region of %d bytes (meta at %d)",
        h.ring_offset, h.ring_bytes, region_bytes, meta_offset));
  }
  m.ring = RingView{region + h.ring_offset, h.ring_bytes};

  format::StateSlot slots[2];
  std::memcpy(slots, block->slots, sizeof(slots));
  const bool valid[2] = {SlotValid(slots[0]), SlotValid(slots[1])};
  if (!valid[0] && !valid[1]) {
    return absl::DataLossError("pmemlog: both state slots fail their checksums");
  }
  if (valid[0] && valid[1] && slots[0].sequence == slots[1].sequence) {
    return absl::DataLossError("pmemlog: both state slots carry the same sequence number");
  }
  m.active_slot = !valid[1] ? 0 : !valid[0] ? 1 : (slots[1].sequence > slots[0].sequence);
  m.state = slots[m.active_slot];
  // Bounds that keep all later arithmetic far from overflow.
  constexpr uint64_t kLimit = 1ull << 62;
  if (m.state.head % format::kRecordAlignBytes != 0 || m.state.head >= kLimit ||
      m.state.first_index < 1 || m.state.first_index >= kLimit) {
    return absl::DataLossError(
        absl::StrFormat("pmemlog state slot %d: bad head %d or first index %d", m.active_slot,
                        m.state.head, m.state.first_index));
  }

  const uint64_t tail_word = __atomic_load_n(&block->tail_word, __ATOMIC_ACQUIRE);
  const std::optional<uint64_t> tail_phys = format::DecodeTail(tail_word, h.ring_bytes);
  if (!tail_phys.has_value()) {
    return absl::DataLossError(
        absl::StrFormat("pmemlog tail word 0x%016x fails its check (tail damaged)", tail_word));
  }
  m.tail_phys = *tail_phys;
  m.head = m.state.head;
  m.tail = m.head + (m.tail_phys + h.ring_bytes - m.ring.Phys(m.head)) % h.ring_bytes;
  if (m.tail - m.head > h.ring_bytes - format::kTailSlackBytes) {
    return absl::DataLossError(
        absl::StrFormat("pmemlog: %d bytes between head and tail exceed the ring's usable %d",
                        m.tail - m.head, h.ring_bytes - format::kTailSlackBytes));
  }
  return m;
}

WalkedRecord CheckRecord(const RingView& ring, uint64_t offset, uint64_t expected_index,
                         uint64_t limit, std::string* payload, std::vector<uint8_t>* scratch) {
  WalkedRecord r;
  r.index = expected_index;
  r.offset = offset;
  auto fail = [&r](bool fatal, const std::string& what) {
    r.status = absl::DataLossError(
        absl::StrFormat("pmemlog entry %d at log offset %d: %s", r.index, r.offset, what));
    r.fatal = fatal;
    return r;
  };
  if (limit < offset || limit - offset < kRecordHeaderBytes) {
    return fail(true, "record header crosses the published tail");
  }
  format::RecordHeader& h = r.header;
  ring.Read(offset, &h, sizeof(h));
  if (h.index != expected_index) {
    return fail(true, absl::StrFormat("record header names index %d", h.index));
  }
  if (h.payload_bytes > format::kPayloadBytesMax || h.reserved[0] != 0 || h.reserved[1] != 0 ||
      h.reserved[2] != 0) {
    return fail(true, absl::StrFormat("bad payload length %d or reserved bytes", h.payload_bytes));
  }
  const uint64_t record_bytes = format::RecordBytes(h.payload_bytes);
  if (record_bytes > limit - offset) {
    return fail(true,
                absl::StrFormat("record of %d bytes crosses the published tail", record_bytes));
  }
  const uint64_t payload_offset = offset + kRecordHeaderBytes;
  const uint8_t* data;
  if (payload != nullptr) {
    payload->resize(h.payload_bytes);
    ring.Read(payload_offset, payload->data(), h.payload_bytes);
    data = reinterpret_cast<const uint8_t*>(payload->data());
  } else {
    data = ring.Contiguous(payload_offset, h.payload_bytes, scratch);
  }
  const uint64_t sum = format::RecordChecksum(h, offset, {data, h.payload_bytes});
  if (sum != h.checksum) return fail(false, "checksum mismatch");
  return r;
}

absl::Status WalkRecords(const DecodedMeta& meta, bool continue_after_damage,
                         const std::function<void(const WalkedRecord&)>& visit) {
  absl::Status first_error;
  std::vector<uint8_t> scratch;
  uint64_t offset = meta.head;
  uint64_t index = meta.state.first_index;
  uint64_t prev_term = meta.state.prev_term;
  while (offset < meta.tail) {
    WalkedRecord r = CheckRecord(meta.ring, offset, index, meta.tail, nullptr, &scratch);
    if (r.status.ok() && r.header.term < prev_term) {
      r.status = absl::DataLossError(absl::StrFormat(
          "pmemlog entry %d at log offset %d: term %d is below the previous term %d", index, offset,
          r.header.term, prev_term));
    }
    visit(r);
    if (!r.status.ok()) {
      if (first_error.ok()) first_error = r.status;
      if (r.fatal || !continue_after_damage) return first_error;
    } else {
      prev_term = r.header.term;
    }
    offset += format::RecordBytes(r.header.payload_bytes);
    ++index;
  }
  ABSL_RAW_CHECK(offset == meta.tail, "records overran the tail without a fatal error");
  return first_error;
}

}  // namespace blizzard::pmemlog
