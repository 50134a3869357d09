// Write set encoding. Grammar: structures/FORMAT.md ("Write set").
#include "structures/write_set.h"

#include "absl/base/internal/raw_logging.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "structures/codec.h"

namespace blizzard::structures {
namespace {
constexpr uint8_t kWriteSetVersion = 1;
}  // namespace

uint64_t WriteSet::bytes() const {
  uint64_t n = 0;
  for (const WriteRange& r : ranges) n += r.post.size();
  return n;
}

std::string EncodeWriteSet(const WriteSet& ws) {
  std::string out;
  out.reserve(2 + 2 * codec::kVarintBytesMax + ws.bytes() +
              ws.ranges.size() * 2 * codec::kVarintBytesMax);
  out.push_back(static_cast<char>(kWriteSetVersion));
  codec::PutVarint(ws.arena_bytes, &out);
  codec::PutVarint(ws.ranges.size(), &out);
  uint64_t end = 0;
  for (size_t i = 0; i < ws.ranges.size(); ++i) {
    const WriteRange& r = ws.ranges[i];
    ABSL_RAW_CHECK(!r.post.empty(), "EncodeWriteSet: empty range");
    ABSL_RAW_CHECK(i == 0 || r.offset > end, "EncodeWriteSet: ranges not canonical");
    ABSL_RAW_CHECK(r.offset + r.post.size() <= ws.arena_bytes, "EncodeWriteSet: out of arena");
    // Offsets as gaps from the previous range's end: small numbers, and
    // gap >= 1 after the first range makes overlap unrepresentable.
    codec::PutVarint(r.offset - end, &out);
    codec::PutBytes(r.post, &out);
    end = r.offset + r.post.size();
  }
  return out;
}

absl::StatusOr<WriteSet> DecodeWriteSet(absl::Span<const uint8_t> bytes, uint64_t arena_bytes) {
  codec::Reader r(bytes, "write set");
  uint8_t version = 0;
  if (auto s = r.Byte(&version); !s.ok()) return s;
  if (version != kWriteSetVersion) {
    return r.Bad(0, absl::StrFormat("unsupported version %d (this build reads %d)", version,
                                    kWriteSetVersion));
  }
  WriteSet ws;
  if (auto s = r.Varint(&ws.arena_bytes); !s.ok()) return s;
  if (ws.arena_bytes != arena_bytes) {
    return r.Bad(1, absl::StrFormat("arena of %d bytes, this arena has %d", ws.arena_bytes,
                                    arena_bytes));
  }
  uint64_t count = 0;
  const size_t count_at = r.offset();
  if (auto s = r.Varint(&count); !s.ok()) return s;
  // Every range takes >= 3 bytes (gap, length, one byte).
  if (count > kWriteSetRangesMax || count > r.remaining() / 3) {
    return r.Bad(count_at, absl::StrFormat("range count %d beyond input or limit", count));
  }
  ws.ranges.resize(count);
  uint64_t end = 0;
  for (size_t i = 0; i < count; ++i) {
    const size_t at = r.offset();
    uint64_t gap = 0;
    if (auto s = r.Varint(&gap); !s.ok()) return s;
    if (i > 0 && gap == 0) return r.Bad(at, "adjacent ranges (not merged)");
    if (gap > arena_bytes - end) return r.Bad(at, "range outside the arena");
    WriteRange& range = ws.ranges[i];
    range.offset = end + gap;
    if (auto s = r.Bytes(arena_bytes - range.offset, "range", &range.post); !s.ok()) return s;
    if (range.post.empty()) return r.Bad(at, "empty range");
    end = range.offset + range.post.size();
  }
  if (r.remaining() != 0) {
    return r.Bad(r.offset(), absl::StrFormat("%d trailing bytes", r.remaining()));
  }
  return ws;
}

}  // namespace blizzard::structures
