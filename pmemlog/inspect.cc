#include "pmemlog/inspect.h"

#include <cstring>
#include <deque>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pmemlog/log_format.h"
#include "pmemlog/log_pool.h"
#include "pmemlog/log_reader.h"

namespace blizzard::pmemlog {
namespace {

std::string Verdict(const absl::Status& status) {
  if (status.ok()) return "OK";
  if (status.code() == absl::StatusCode::kFailedPrecondition) {
    return absl::StrCat("REFUSED: ", status.message());
  }
  return absl::StrCat("CORRUPT: ", status.message());
}

std::string SlotLine(int i, const format::StateSlot& s, bool active) {
  return absl::StrFormat(
      "slot %d: %s%s sequence=%d head=%d first_index=%d prev_term=%d term=%d vote=%d "
      "commit=%d\n",
      i, SlotValid(s) ? "valid" : "INVALID", active ? " (active)" : "", s.sequence, s.head,
      s.first_index, s.prev_term, s.term, s.vote, s.commit);
}

std::string RecordLine(const WalkedRecord& r) {
  return absl::StrFormat(
      "  entry %d: term=%d type=%d payload_bytes=%d offset=%d %s\n", r.index, r.header.term,
      r.header.type, r.header.payload_bytes, r.offset,
      r.status.ok() ? "checksum ok" : absl::StrCat("DAMAGED: ", r.status.message()));
}

// Describes everything but the first line; returns the verdict's status.
absl::Status DescribeBody(const uint8_t* region, uint64_t region_bytes, uint64_t meta_offset,
                          const DescribeOptions& options, std::string* out) {
  if (meta_offset % format::kMetaAlignBytes != 0 || meta_offset > region_bytes ||
      region_bytes - meta_offset < format::kMetaBytes) {
    return absl::DataLossError("meta block outside the region");
  }
  format::MetaBlock raw;
  std::memcpy(&raw, region + meta_offset, sizeof(raw));
  const format::Header& h = raw.header;
  absl::StrAppendFormat(
      out,
      "header: magic=0x%016x%s version=%d cluster=%d node=%d ring_offset=%d ring_bytes=%d "
      "checksum %s\n",
      h.magic, h.magic == format::kMagic ? "" : " (BAD)", h.format_version, h.cluster_id, h.node_id,
      h.ring_offset, h.ring_bytes, format::HeaderChecksum(h) == h.checksum ? "ok" : "BAD");
  const std::optional<uint64_t> tail_phys =
      h.ring_bytes > 0 ? format::DecodeTail(raw.tail_word, h.ring_bytes) : std::nullopt;
  absl::StrAppendFormat(
      out, "tail word: 0x%016x %s\n", raw.tail_word,
      tail_phys ? absl::StrFormat("(ring offset %d)", *tail_phys) : std::string("(BAD)"));
  absl::StatusOr<DecodedMeta> meta = DecodeMeta(region, region_bytes, meta_offset, std::nullopt);
  for (int i = 0; i < 2; ++i) {
    *out += SlotLine(i, raw.slots[i], meta.ok() && meta->active_slot == i);
  }
  if (!meta.ok()) return meta.status();

  const uint64_t first = meta->state.first_index;
  absl::StrAppendFormat(out,
                        "log: first_index=%d prev_term=%d hard_state={term=%d vote=%d "
                        "commit=%d} head=%d tail=%d bytes_used=%d of %d\n",
                        first, meta->state.prev_term, meta->state.term, meta->state.vote,
                        meta->state.commit, meta->head, meta->tail, meta->tail - meta->head,
                        h.ring_bytes - format::kTailSlackBytes);
  std::vector<WalkedRecord> head;
  std::deque<WalkedRecord> tail;
  std::vector<WalkedRecord> damaged;
  uint64_t walked = 0;
  uint64_t damaged_count = 0;
  const absl::Status walk =
      WalkRecords(*meta, /*continue_after_damage=*/true, [&](const WalkedRecord& r) {
        ++walked;
        if (!r.status.ok()) {
          ++damaged_count;
          if (damaged.size() < options.damaged_entries_max) damaged.push_back(r);
          return;
        }
        if (head.size() < options.head_entries) {
          head.push_back(r);
          return;
        }
        tail.push_back(r);
        if (tail.size() > options.tail_entries) tail.pop_front();
      });
  absl::StrAppendFormat(out, "entries: %d walked (indices %d..%d), %d damaged\n", walked, first,
                        first + walked - 1, damaged_count);
  for (const WalkedRecord& r : head) *out += RecordLine(r);
  const uint64_t listed = head.size() + tail.size() + damaged_count;
  if (walked > listed) absl::StrAppendFormat(out, "  ... %d entries not listed\n", walked - listed);
  for (const WalkedRecord& r : tail) *out += RecordLine(r);
  for (const WalkedRecord& r : damaged) *out += RecordLine(r);
  return walk;
}

}  // namespace

std::string DescribeRegion(const std::string& name, const uint8_t* region, uint64_t region_bytes,
                           uint64_t meta_offset, const DescribeOptions& options) {
  std::string body;
  const absl::Status status = DescribeBody(region, region_bytes, meta_offset, options, &body);
  return absl::StrCat("pmemlog ", name, ": ", Verdict(status), "\n", body);
}

absl::StatusOr<std::string> DescribeLog(const std::string& path, const DescribeOptions& options) {
  absl::StatusOr<std::unique_ptr<LogPool>> pool = LogPool::Open(path);
  if (!pool.ok()) return pool.status();
  Persistence* region = (*pool)->persistence();
  std::string body;
  absl::Status status =
      DescribeBody(region->base(), region->size_bytes(), (*pool)->meta_offset(), options, &body);
  if (status.ok()) {
    format::Header header;
    std::memcpy(&header, region->base() + (*pool)->meta_offset(), sizeof(header));
    status = (*pool)->CheckRing(header);
  }
  return absl::StrCat("pmemlog ", path, ": ", Verdict(status), "\n", body);
}

}  // namespace blizzard::pmemlog
