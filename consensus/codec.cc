#include "consensus/codec.h"

#include <xxhash.h>

#include <cstring>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"

namespace blizzard::consensus {

namespace {

// Layout constants: see WIRE_FORMAT.md, which must change with them.
constexpr uint32_t kMagic = 0x4d5a4c42;  // "BLZM" as little-endian bytes.
constexpr uint16_t kVersion = 2;
constexpr uint64_t kChecksumSeed = 0x426c697a7a617264;  // "Blizzard".
constexpr size_t kHeaderBytes = 76;
constexpr size_t kEntryHeaderBytes = 13;  // term u64, type u8, length u32.
constexpr size_t kTrailerBytes = 8;       // XXH3-64 of everything before.
constexpr uint8_t kFlagReject = 0x01;
constexpr uint8_t kFlagTransfer = 0x02;
constexpr uint8_t kFlagsKnown = kFlagReject | kFlagTransfer;
// offset u64, total u64, voter count u16, learner count u16, then the ids,
// then data length u32 and the data.
constexpr size_t kSnapshotSectionFixedBytes = 8 + 8 + 2 + 2 + 4;

bool HasSnapshotSection(MessageType type) {
  return type == MessageType::kSnapshot ||
         type == MessageType::kSnapshotResponse;
}
static_assert(kWireEntryBytesMax <= UINT32_MAX, "lengths are 32-bit");
static_assert(kSnapshotChunkBytesMax <= UINT32_MAX, "lengths are 32-bit");
static_assert(kMembersMax <= UINT16_MAX, "member counts are 16-bit");

void PutU16(std::string& out, uint16_t v) {
  for (int i = 0; i < 2; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t Checksum(const uint8_t* data, size_t size) {
  return XXH3_64bits_withSeed(data, size, kChecksumSeed);
}

// Bounds-checked little-endian reader over the checksummed body. Every read
// checks the remaining length first, so no input can read out of bounds.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t remaining() const { return size_ - pos_; }

  bool U8(uint8_t& v) { return Fixed(v, 1); }
  bool U16(uint16_t& v) { return Fixed(v, 2); }
  bool U32(uint32_t& v) { return Fixed(v, 4); }
  bool U64(uint64_t& v) { return Fixed(v, 8); }

  bool Bytes(size_t n, std::string& out) {
    if (remaining() < n) return false;
    out.assign(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return true;
  }

 private:
  template <typename T>
  bool Fixed(T& v, size_t n) {
    if (remaining() < n) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; ++i) {
      x |= static_cast<uint64_t>(data_[pos_ + i]) << (8 * i);
    }
    v = static_cast<T>(x);
    pos_ += n;
    return true;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

absl::Status Malformed(const char* what) {
  return absl::InvalidArgumentError(
      absl::StrFormat("malformed raft message: %s", what));
}

}  // namespace

std::string EncodeMessage(const Message& m) {
  // Only Raft's own, valid messages are encoded; anything else is a bug.
  ABSL_RAW_CHECK(ValidateMessage(m).ok(), "encoding an invalid message");
  size_t size = kHeaderBytes + kTrailerBytes;
  for (const Entry& e : m.entries) size += kEntryHeaderBytes + e.data.size();
  if (HasSnapshotSection(m.type)) {
    size += kSnapshotSectionFixedBytes +
            8 * (m.membership.voters.size() + m.membership.learners.size()) +
            m.data.size();
  }
  std::string out;
  out.reserve(size);
  PutU32(out, kMagic);
  PutU16(out, kVersion);
  out.push_back(static_cast<char>(m.type));
  out.push_back(static_cast<char>((m.reject ? kFlagReject : 0) |
                                  (m.transfer ? kFlagTransfer : 0)));
  PutU64(out, m.from);
  PutU64(out, m.to);
  PutU64(out, m.term);
  PutU64(out, m.index);
  PutU64(out, m.log_term);
  PutU64(out, m.commit);
  PutU64(out, m.reject_hint);
  PutU64(out, m.context);
  PutU32(out, static_cast<uint32_t>(m.entries.size()));
  ABSL_RAW_CHECK(out.size() == kHeaderBytes, "header size mismatch");
  for (const Entry& e : m.entries) {
    // The index is implied (m.index + 1 + k; ValidateMessage checked it).
    PutU64(out, e.term);
    out.push_back(static_cast<char>(e.type));
    PutU32(out, static_cast<uint32_t>(e.data.size()));
    out.append(e.data);
  }
  if (HasSnapshotSection(m.type)) {
    PutU64(out, m.snapshot_offset);
    PutU64(out, m.snapshot_bytes);
    // ValidateMessage bounds the counts by kMembersMax.
    PutU16(out, static_cast<uint16_t>(m.membership.voters.size()));
    PutU16(out, static_cast<uint16_t>(m.membership.learners.size()));
    for (NodeId id : m.membership.voters) PutU64(out, id);
    for (NodeId id : m.membership.learners) PutU64(out, id);
    PutU32(out, static_cast<uint32_t>(m.data.size()));
    out.append(m.data);
  }
  PutU64(out, Checksum(reinterpret_cast<const uint8_t*>(out.data()),
                       out.size()));
  ABSL_RAW_CHECK(out.size() == size, "encoded size mismatch");
  return out;
}

absl::StatusOr<Message> DecodeMessage(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < kHeaderBytes + kTrailerBytes) {
    return Malformed("shorter than the fixed header and checksum");
  }
  Reader header(bytes.data(), bytes.size());
  uint32_t magic = 0;
  uint16_t version = 0;
  header.U32(magic);
  header.U16(version);
  if (magic != kMagic) return Malformed("bad magic");
  // The version is checked before the checksum: another version may
  // checksum differently, and "wrong version" is the useful answer then.
  if (version != kVersion) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "raft message version %d, this node speaks %d", version, kVersion));
  }
  const size_t body_size = bytes.size() - kTrailerBytes;
  Reader trailer(bytes.data() + body_size, kTrailerBytes);
  uint64_t stored_checksum = 0;
  trailer.U64(stored_checksum);
  if (Checksum(bytes.data(), body_size) != stored_checksum) {
    return absl::DataLossError("raft message checksum mismatch");
  }

  Reader r(bytes.data() + 6, body_size - 6);
  Message m;
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t entry_count = 0;
  // The body is at least the header long (checked above): these succeed.
  bool ok = r.U8(type) && r.U8(flags) && r.U64(m.from) && r.U64(m.to) &&
            r.U64(m.term) && r.U64(m.index) && r.U64(m.log_term) &&
            r.U64(m.commit) && r.U64(m.reject_hint) && r.U64(m.context) &&
            r.U32(entry_count);
  ABSL_RAW_CHECK(ok, "fixed header read failed after the length check");
  if (!IsValidMessageType(type)) return Malformed("unknown message type");
  m.type = static_cast<MessageType>(type);
  if ((flags & ~kFlagsKnown) != 0) return Malformed("unknown flags");
  m.reject = (flags & kFlagReject) != 0;
  m.transfer = (flags & kFlagTransfer) != 0;
  if (entry_count > kWireEntriesMax) return Malformed("too many entries");
  // Every entry takes at least its header: a cheap bound before allocating.
  if (entry_count > r.remaining() / kEntryHeaderBytes) {
    return Malformed("entry count beyond the message length");
  }
  m.entries.resize(entry_count);
  for (uint32_t k = 0; k < entry_count; ++k) {
    Entry& e = m.entries[k];
    uint8_t entry_type = 0;
    uint32_t length = 0;
    if (!(r.U64(e.term) && r.U8(entry_type) && r.U32(length))) {
      return Malformed("truncated entry header");
    }
    if (!IsValidEntryType(entry_type)) return Malformed("unknown entry type");
    e.type = static_cast<EntryType>(entry_type);
    if (length > kWireEntryBytesMax) return Malformed("entry too large");
    if (!r.Bytes(length, e.data)) return Malformed("truncated entry data");
    e.index = m.index + 1 + k;  // Overflow is caught by ValidateMessage.
  }
  if (HasSnapshotSection(m.type)) {
    uint16_t voters = 0;
    uint16_t learners = 0;
    if (!(r.U64(m.snapshot_offset) && r.U64(m.snapshot_bytes) &&
          r.U16(voters) && r.U16(learners))) {
      return Malformed("truncated snapshot section");
    }
    if (voters + learners > kMembersMax) return Malformed("too many members");
    // Bounded by kMembersMax: at most 2 KiB before the length check below.
    if (static_cast<size_t>(voters + learners) > r.remaining() / 8) {
      return Malformed("member count beyond the message length");
    }
    m.membership.voters.resize(voters);
    m.membership.learners.resize(learners);
    for (NodeId& id : m.membership.voters) r.U64(id);
    for (NodeId& id : m.membership.learners) r.U64(id);
    uint32_t length = 0;
    if (!r.U32(length)) return Malformed("truncated snapshot section");
    if (length > kSnapshotChunkBytesMax) return Malformed("chunk too large");
    if (!r.Bytes(length, m.data)) return Malformed("truncated snapshot chunk");
  }
  if (r.remaining() != 0) return Malformed("trailing bytes");
  absl::Status valid = ValidateMessage(m);
  if (!valid.ok()) return valid;
  return m;
}

}  // namespace blizzard::consensus
