// Canonical varint encoding and a bounds-checked reader, shared by the
// operation batch (op.cc) and the write set (write_set.cc). Both formats
// come from peers and disk: every read is checked and names its offset.
#ifndef BLIZZARD_STRUCTURES_CODEC_H_
#define BLIZZARD_STRUCTURES_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"

namespace blizzard::structures::codec {

inline constexpr size_t kVarintBytesMax = 10;

inline void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

inline void PutBytes(std::string_view s, std::string* out) {
  PutVarint(s.size(), out);
  out->append(s.data(), s.size());
}

inline uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

inline int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
}

// A bounds-checked cursor over untrusted bytes. Every failure is
// InvalidArgument "<what>: <why> at byte <offset>".
class Reader {
 public:
  Reader(absl::Span<const uint8_t> bytes, const char* what) : bytes_(bytes), what_(what) {}

  size_t offset() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }

  absl::Status Byte(uint8_t* out) {
    if (remaining() < 1) return Truncated("byte");
    *out = bytes_[pos_++];
    return absl::OkStatus();
  }

  // Eight bytes, little-endian.
  absl::Status Fixed64(uint64_t* out) {
    if (remaining() < 8) return Truncated("fixed64");
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | bytes_[pos_ + i];
    pos_ += 8;
    *out = v;
    return absl::OkStatus();
  }

  // Canonical LEB128 only: at most 10 bytes, no redundant trailing zero
  // groups, no bits beyond 64. One value has exactly one encoding, so
  // Encode(Decode(x)) == x for every accepted x.
  absl::Status Varint(uint64_t* out) {
    const size_t start = pos_;
    uint64_t v = 0;
    for (size_t i = 0; i < kVarintBytesMax; ++i) {
      if (remaining() < 1) return Truncated("varint");
      const uint8_t b = bytes_[pos_++];
      if (i == kVarintBytesMax - 1 && b > 1) return Bad(start, "varint overflows 64 bits");
      v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0) {
        if (b == 0 && i > 0) return Bad(start, "non-canonical varint");
        *out = v;
        return absl::OkStatus();
      }
    }
    return Bad(start, "varint longer than 10 bytes");
  }

  // A length-prefixed byte string of at most `limit` bytes.
  absl::Status Bytes(uint64_t limit, const char* what, std::string* out) {
    const size_t start = pos_;
    uint64_t n = 0;
    if (auto s = Varint(&n); !s.ok()) return s;
    if (n > limit) {
      return Bad(start, absl::StrFormat("%s of %d bytes exceeds %d", what, n, limit));
    }
    if (n > remaining()) return Truncated(what);
    out->assign(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return absl::OkStatus();
  }

  // `n` raw bytes (the caller bounded n).
  absl::Status Raw(uint64_t n, const char* what, const uint8_t** out) {
    if (n > remaining()) return Truncated(what);
    *out = bytes_.data() + pos_;
    pos_ += n;
    return absl::OkStatus();
  }

  absl::Status Bad(size_t at, const std::string& why) const {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %s at byte %d", what_, why, at));
  }

 private:
  absl::Status Truncated(const char* what) const {
    return Bad(pos_, absl::StrFormat("truncated %s", what));
  }

  absl::Span<const uint8_t> bytes_;
  const char* what_;
  size_t pos_ = 0;
};

inline void PutFixed64(uint64_t v, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace blizzard::structures::codec

#endif  // BLIZZARD_STRUCTURES_CODEC_H_
