// Reading a pmemlog image: decoding and validating the meta block and walking
// the records of the live log (FORMAT.md sections 2, 3 and 5). Pure reads of
// a byte region; shared by recovery (log_core.h, strict) and the inspector
// (inspect.h, which reports every damaged record it can still delimit).
#ifndef BLIZZARD_PMEMLOG_LOG_READER_H_
#define BLIZZARD_PMEMLOG_LOG_READER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pmemlog/log_format.h"

namespace blizzard::pmemlog {

// The ring seen through logical offsets (FORMAT.md section 3).
struct RingView {
  const uint8_t* base = nullptr;
  uint64_t bytes = 0;

  uint64_t Phys(uint64_t logical) const { return logical % bytes; }
  // Copies [logical, logical + len) out of the ring, across its end if needed.
  void Read(uint64_t logical, void* dst, uint64_t len) const;
  // The bytes [logical, logical + len) as one contiguous span: in place when
  // they do not wrap, else copied into *scratch.
  const uint8_t* Contiguous(uint64_t logical, uint64_t len, std::vector<uint8_t>* scratch) const;
};

struct Identity {
  uint64_t cluster_id = 0;
  uint64_t node_id = 0;
};

// A validated meta block.
struct DecodedMeta {
  format::Header header;
  int active_slot = 0;
  format::StateSlot state;  // The active slot.
  uint64_t tail_phys = 0;
  uint64_t head = 0;  // Logical, == state.head.
  uint64_t tail = 0;  // Logical.
  RingView ring;
};

// Validates the meta block at region + meta_offset and everything it names
// (FORMAT.md 2.1-2.3, 3). Errors: DataLoss for damage, FailedPrecondition for
// another format version or (if `expected` is set) another cluster or node.
absl::StatusOr<DecodedMeta> DecodeMeta(const uint8_t* region, uint64_t region_bytes,
                                       uint64_t meta_offset,
                                       const std::optional<Identity>& expected);

// Whether slot `slot` verifies on its own (checksum, sequence >= 1).
bool SlotValid(const format::StateSlot& slot);

// One record met by a walk.
struct WalkedRecord {
  uint64_t index = 0;   // The index expected at this position.
  uint64_t offset = 0;  // Logical.
  format::RecordHeader header{};
  // OK, or DataLoss naming index and offset.
  absl::Status status;
  // True when the record's extent cannot be trusted, so the walk cannot go on.
  bool fatal = false;
};

// Checks the record at logical `offset`, which must be entry
// `expected_index` and end at or before logical `limit`. Fills *header. If
// `payload` is non-null the payload is copied into it (and hashed from there);
// else it is hashed in place (or via *scratch when it wraps).
WalkedRecord CheckRecord(const RingView& ring, uint64_t offset, uint64_t expected_index,
                         uint64_t limit, std::string* payload, std::vector<uint8_t>* scratch);

// Walks the live log of `meta` from head to tail, calling `visit` for every
// record. Terms must not decrease (starting at state.prev_term). If
// `continue_after_damage`, the walk goes on after a non-fatal error (a bad
// checksum or term); it always stops at a fatal one. Returns the first error
// met, or OK if every record verified and they tile [head, tail) exactly.
absl::Status WalkRecords(const DecodedMeta& meta, bool continue_after_damage,
                         const std::function<void(const WalkedRecord&)>& visit);

}  // namespace blizzard::pmemlog

#endif  // BLIZZARD_PMEMLOG_LOG_READER_H_
