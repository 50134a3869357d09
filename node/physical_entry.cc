#include "node/physical_entry.h"

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"
#include "structures/codec.h"

namespace blizzard::node {

std::string EncodePhysicalEntry(uint64_t ops, absl::Span<const uint64_t> session_clients,
                                const structures::WriteSet& ws) {
  ABSL_RAW_CHECK(ops <= kPhysicalEntryOpsMax, "physical entry with too many ops");
  ABSL_RAW_CHECK(session_clients.size() <= kPhysicalEntrySessionsMax,
                 "physical entry with too many session clients");
  std::string out;
  out.push_back(static_cast<char>(session_clients.empty() ? kPhysicalEntryVersion
                                                          : kPhysicalEntryVersionSessions));
  structures::codec::PutVarint(ops, &out);
  if (!session_clients.empty()) {
    structures::codec::PutVarint(session_clients.size(), &out);
    uint64_t previous = 0;
    for (uint64_t c : session_clients) {
      ABSL_RAW_CHECK(c > previous, "session clients must be non-zero and strictly ascending");
      for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((c >> (8 * i)) & 0xff));
      previous = c;
    }
  }
  out.append(structures::EncodeWriteSet(ws));
  return out;
}

absl::StatusOr<PhysicalEntry> DecodePhysicalEntry(absl::Span<const uint8_t> bytes,
                                                  uint64_t arena_bytes) {
  structures::codec::Reader r(bytes, "physical entry");
  uint8_t version = 0;
  if (auto s = r.Byte(&version); !s.ok()) return s;
  if (version != kPhysicalEntryVersion && version != kPhysicalEntryVersionSessions) {
    return r.Bad(0, absl::StrFormat("unsupported version %d (this build reads %d and %d)",
                                    version, kPhysicalEntryVersion,
                                    kPhysicalEntryVersionSessions));
  }
  PhysicalEntry e;
  if (auto s = r.Varint(&e.ops); !s.ok()) return s;
  if (e.ops > kPhysicalEntryOpsMax) {
    return r.Bad(1, absl::StrFormat("%d ops exceed %d", e.ops, kPhysicalEntryOpsMax));
  }
  if (version == kPhysicalEntryVersionSessions) {
    const size_t at = r.offset();
    uint64_t n = 0;
    if (auto s = r.Varint(&n); !s.ok()) return s;
    if (n == 0 || n > kPhysicalEntrySessionsMax) {
      return r.Bad(at, absl::StrFormat("%d session clients (1..%d in version 2)", n,
                                       kPhysicalEntrySessionsMax));
    }
    if (n * 8 > r.remaining()) return r.Bad(r.offset(), "truncated session clients");
    e.session_clients.reserve(n);
    uint64_t previous = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const size_t client_at = r.offset();
      uint64_t c = 0;
      if (auto s = r.Fixed64(&c); !s.ok()) return s;
      if (c <= previous) {
        return r.Bad(client_at, "session clients not non-zero and strictly ascending");
      }
      e.session_clients.push_back(c);
      previous = c;
    }
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
