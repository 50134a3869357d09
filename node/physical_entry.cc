#include "node/physical_entry.h"

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"
#include "structures/codec.h"

namespace blizzard::node {

std::string EncodePhysicalEntry(uint64_t ops, const structures::WriteSet& ws) {
  ABSL_RAW_CHECK(ops <= kPhysicalEntryOpsMax, "physical entry with too many ops");
  std::string out;
  out.push_back(static_cast<char>(kPhysicalEntryVersion));
  structures::codec::PutVarint(ops, &out);
  out.append(structures::EncodeWriteSet(ws));
  return out;
}

absl::StatusOr<PhysicalEntry> DecodePhysicalEntry(absl::Span<const uint8_t> bytes,
                                                  uint64_t arena_bytes) {
  structures::codec::Reader r(bytes, "physical entry");
  uint8_t version = 0;
  if (auto s = r.Byte(&version); !s.ok()) return s;
  if (version != kPhysicalEntryVersion) {
    return r.Bad(0, absl::StrFormat("unsupported version %d (this build reads %d)", version,
                                    kPhysicalEntryVersion));
  }
  PhysicalEntry e;
  if (auto s = r.Varint(&e.ops); !s.ok()) return s;
  if (e.ops > kPhysicalEntryOpsMax) {
    return r.Bad(1, absl::StrFormat("%d ops exceed %d", e.ops, kPhysicalEntryOpsMax));
  }
  const size_t at = r.offset();
  absl::StatusOr<structures::WriteSet> ws = structures::DecodeWriteSet(bytes.subspan(at), arena_bytes);
  if (!ws.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "physical entry: write set at byte %d: %s", at, std::string(ws.status().message())));
  }
  e.write_set = std::move(*ws);
  return e;
}

}  // namespace blizzard::node
