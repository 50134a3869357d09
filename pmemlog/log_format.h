// The on-media structures and constants of pmemlog, format version 2.
// The grammar (and why each field exists) is in pmemlog/FORMAT.md; this header
// is its only translation into code. Pure: no I/O, no persistence.
#ifndef BLIZZARD_PMEMLOG_LOG_FORMAT_H_
#define BLIZZARD_PMEMLOG_LOG_FORMAT_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/types/span.h"

namespace blizzard::pmemlog::format {

static_assert(std::endian::native == std::endian::little,
              "pmemlog's format is little-endian; see FORMAT.md");

// ---- Container (section 1) ----
inline constexpr char kPoolLayout[] = "blizzard_log";
inline constexpr uint64_t kRingTypeNum = 0x424c5a52;  // "BLZR"
inline constexpr uint64_t kRootOidBytes = 16;         // sizeof(PMEMoid).

// ---- Meta block (section 2) ----
inline constexpr uint64_t kMagic = 0x3130474F4C5A4C42ull;  // "BLZLOG01"
inline constexpr uint32_t kFormatVersion = 2;
inline constexpr uint64_t kCacheLineBytes = 64;
inline constexpr uint64_t kMetaBytes = 256;
inline constexpr uint64_t kMetaAlignBytes = 64;
inline constexpr uint64_t kRootBytes = kRootOidBytes + kMetaAlignBytes + kMetaBytes;

// ---- Ring and records (sections 3, 7) ----
inline constexpr uint64_t kRecordHeaderBytes = 32;
inline constexpr uint64_t kRecordAlignBytes = 8;
inline constexpr uint64_t kPayloadBytesMax = 64ull << 20;
inline constexpr uint64_t kBatchEntriesMax = 65536;
inline constexpr uint64_t kRingBytesMin = 4096;
inline constexpr uint64_t kRingBytesMax = 1ull << 40;
inline constexpr uint64_t kRingAlignBytes = 64;
inline constexpr uint64_t kTailSlackBytes = 8;
inline constexpr uint64_t kPoolBytesMin = 8ull << 20;
inline constexpr uint64_t kPoolBytesMax = 1ull << 40;

// ---- Implementation tunables (not part of the format) ----
// A batch is written to the ring in whole cache lines with non-temporal
// stores (log_core.cc): records are gathered in a DRAM staging buffer of
// kStageBytes (a multiple of 64), except the whole-line middle of payloads of
// at least kDirectCopyBytesMin bytes, streamed straight from the caller.
inline constexpr uint64_t kStageBytes = 4096;
inline constexpr uint64_t kDirectCopyBytesMin = 1024;

static_assert(kStageBytes % kCacheLineBytes == 0 && kDirectCopyBytesMin >= kCacheLineBytes);

// ---- Tail word (section 2.2) ----
inline constexpr int kTailPhysBits = 40;
inline constexpr uint64_t kTailPhysMask = (1ull << kTailPhysBits) - 1;
static_assert(kRingBytesMax <= (1ull << kTailPhysBits));

// ---- Checksum seeds: one per structure, so no structure verifies as another.
inline constexpr uint64_t kHeaderSeed = 0x6865616465723031ull;
inline constexpr uint64_t kSlotSeed = 0x736c6f7473303031ull;
inline constexpr uint64_t kTailSeed = 0x7461696c77303031ull;
inline constexpr uint64_t kRecordSeed = 0x7265636f72643031ull;

struct Header {
  uint64_t magic;
  uint32_t format_version;
  uint32_t meta_bytes;
  uint64_t cluster_id;
  uint64_t node_id;
  uint64_t ring_offset;
  uint64_t ring_bytes;
  uint64_t reserved;
  uint64_t checksum;
};
static_assert(sizeof(Header) == 64);

struct StateSlot {
  uint64_t sequence;
  uint64_t head;
  uint64_t first_index;
  uint64_t prev_term;
  uint64_t term;
  uint64_t vote;
  uint64_t commit;
  uint64_t checksum;
};
static_assert(sizeof(StateSlot) == 64);

struct alignas(64) MetaBlock {
  Header header;
  uint64_t tail_word;
  uint8_t tail_line_zero[56];
  StateSlot slots[2];
};
static_assert(sizeof(MetaBlock) == kMetaBytes);
static_assert(offsetof(MetaBlock, tail_word) == 64);
static_assert(offsetof(MetaBlock, slots) == 128);

struct RecordHeader {
  uint64_t index;
  uint64_t term;
  uint32_t payload_bytes;
  uint8_t type;
  uint8_t reserved[3];
  uint64_t checksum;
};
static_assert(sizeof(RecordHeader) == kRecordHeaderBytes);
inline constexpr uint64_t kRecordChecksummedHeaderBytes = offsetof(RecordHeader, checksum);

constexpr uint64_t RoundUp(uint64_t v, uint64_t align) { return (v + align - 1) / align * align; }
constexpr uint64_t RoundDown(uint64_t v, uint64_t align) { return v / align * align; }

// Bytes a record with `payload_bytes` of payload occupies in the ring.
constexpr uint64_t RecordBytes(uint64_t payload_bytes) {
  return kRecordHeaderBytes + RoundUp(payload_bytes, kRecordAlignBytes);
}

uint64_t HeaderChecksum(const Header& header);
uint64_t SlotChecksum(const StateSlot& slot);

// Checksum of a record at logical offset `logical_offset` (FORMAT.md 3.1).
// Only the first kRecordChecksummedHeaderBytes of `header` are covered.
uint64_t RecordChecksum(const RecordHeader& header, uint64_t logical_offset,
                        absl::Span<const uint8_t> payload);
// The same from its parts, for the writer: the header given by its fields
// (reserved bytes zero) and the payload by RecordPayloadHash.
uint64_t RecordChecksumOf(uint64_t index, uint64_t term, uint32_t payload_bytes, uint8_t type,
                          uint64_t logical_offset, uint64_t payload_hash);
// The payload's unseeded XXH3 (the inner hash of the record checksum).
uint64_t RecordPayloadHash(absl::Span<const uint8_t> payload);

// The tail word for physical offset `tail_phys` (8-aligned, < 2^40).
uint64_t EncodeTail(uint64_t tail_phys);
// The physical offset a tail word names, or nullopt if its check bits or
// alignment are wrong, or it is not below `ring_bytes`.
std::optional<uint64_t> DecodeTail(uint64_t word, uint64_t ring_bytes);

}  // namespace blizzard::pmemlog::format

#endif  // BLIZZARD_PMEMLOG_LOG_FORMAT_H_
