#include "pmemlog/log_format.h"

// The x86 dispatcher picks the widest vector unit at run time (AVX-512,
// AVX2, SSE2); the hash is the same XXH3 whichever it picks. Measured on the
// project's machine, 1-4 KiB payloads hash ~7-10x faster than through the
// plain entry point, which this distribution's libxxhash builds for SSE2.
// Keep the plain names for everything else.
#define XXH_DISPATCH_DISABLE_REPLACE
#include <xxh_x86dispatch.h>
#include <xxhash.h>
// Short inputs (up to 240 bytes) take XXH3's scalar paths in every build;
// compiled inline here they skip the library call and its length dispatch
// (the same hash). From here on, XXH3_64bits_withSeed and XXH3_64bits name
// the inline copies.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstring>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::pmemlog::format {
namespace {
// XXH3_MIDSIZE_MAX: the longest input XXH3 hashes without its vector loop.
constexpr size_t kXxh3ShortBytesMax = 240;
}  // namespace

uint64_t HeaderChecksum(const Header& header) {
  return XXH3_64bits_withSeed(&header, offsetof(Header, checksum), kHeaderSeed);
}

uint64_t SlotChecksum(const StateSlot& slot) {
  return XXH3_64bits_withSeed(&slot, offsetof(StateSlot, checksum), kSlotSeed);
}

uint64_t RecordPayloadHash(absl::Span<const uint8_t> payload) {
  // Unseeded: XXH3 with a seed derives a custom secret (192 bytes) before it
  // hashes an input longer than 240 bytes, ~10-20 ns per record, which
  // format version 1 paid on every large record (its seed was per record).
  // Up to 240 bytes the inline scalar paths are the same hash without a call.
  if (payload.size() <= kXxh3ShortBytesMax) return XXH3_64bits(payload.data(), payload.size());
  return XXH3_64bits_dispatch(payload.data(), payload.size());
}

namespace {
// FORMAT.md 3.1: XXH3 of 32 bytes, the header's first 24 bytes as stored and
// the payload's hash, seeded with the record's position.
uint64_t RecordWordsChecksum(const uint64_t (&words)[4], uint64_t logical_offset) {
  static_assert(sizeof(words) == kRecordChecksummedHeaderBytes + sizeof(uint64_t));
  return XXH3_64bits_withSeed(words, sizeof(words), logical_offset ^ kRecordSeed);
}
}  // namespace

uint64_t RecordChecksumOf(uint64_t index, uint64_t term, uint32_t payload_bytes, uint8_t type,
                          uint64_t logical_offset, uint64_t payload_hash) {
  // The words are built from values rather than read back from a
  // RecordHeader the caller has just filled field by field: an 8-byte load
  // over a 4-byte and a 1-byte store cannot be forwarded from the store
  // buffer and stalls (measured: a quarter of a small append's CPU time).
  const uint64_t words[4] = {index, term,
                             uint64_t{payload_bytes} | (uint64_t{type} << 32), payload_hash};
  return RecordWordsChecksum(words, logical_offset);
}

uint64_t RecordChecksum(const RecordHeader& header, uint64_t logical_offset,
                        absl::Span<const uint8_t> payload) {
  uint64_t words[4];
  std::memcpy(words, &header, kRecordChecksummedHeaderBytes);
  words[3] = RecordPayloadHash(payload);
  return RecordWordsChecksum(words, logical_offset);
}

namespace {
uint64_t TailCheck(uint64_t tail_phys) {
  return XXH3_64bits_withSeed(&tail_phys, sizeof(tail_phys), kTailSeed) >> kTailPhysBits;
}
}  // namespace

uint64_t EncodeTail(uint64_t tail_phys) {
  ABSL_RAW_CHECK(tail_phys <= kTailPhysMask && tail_phys % kRecordAlignBytes == 0,
                 "tail offset out of the tail word's range");
  return tail_phys | (TailCheck(tail_phys) << kTailPhysBits);
}

std::optional<uint64_t> DecodeTail(uint64_t word, uint64_t ring_bytes) {
  const uint64_t tail_phys = word & kTailPhysMask;
  if ((word >> kTailPhysBits) != TailCheck(tail_phys)) return std::nullopt;
  if (tail_phys % kRecordAlignBytes != 0 || tail_phys >= ring_bytes) return std::nullopt;
  return tail_phys;
}

}  // namespace blizzard::pmemlog::format
