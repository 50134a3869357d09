// Operation batch encoding. The grammar is in structures/FORMAT.md
// ("Operation batch"); this file is its only reader and writer.
#include "structures/op.h"

#include <cstring>
#include <limits>

#include "absl/base/internal/raw_logging.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace blizzard::structures {
namespace {

constexpr uint8_t kBatchVersion = 1;
// Smallest encoding of any op (code + one empty key + one more byte: a
// value length, a key count or a delta). Bounds `reserve` against the input
// size, so a forged op count cannot make the decoder allocate.
constexpr size_t kOpBytesMin = 3;
constexpr size_t kVarintBytesMax = 10;

absl::Status CheckKey(const std::string& key, size_t arg) {
  if (key.size() > kKeyBytesMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "argument %d: key of %d bytes exceeds %d", arg, key.size(), kKeyBytesMax));
  }
  return absl::OkStatus();
}

absl::Status CheckValue(const std::string& value, size_t arg) {
  if (value.size() > kValueBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrFormat("argument %d: value of %d bytes exceeds %d", arg,
                        value.size(), kValueBytesMax));
  }
  return absl::OkStatus();
}

absl::Status CheckArity(const Op& op, const char* name, bool ok) {
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "wrong number of arguments for %s: %d", name, op.args.size()));
  }
  return absl::OkStatus();
}

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutBytes(const std::string& s, std::string* out) {
  PutVarint(s.size(), out);
  out->append(s);
}

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
}

// A bounds-checked cursor. Every read reports the offset of a failure so a
// corrupt entry can be located.
class Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> bytes) : bytes_(bytes) {}

  size_t offset() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }

  absl::Status Byte(uint8_t* out) {
    if (remaining() < 1) return Truncated("byte");
    *out = bytes_[pos_++];
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

  absl::Status Bad(size_t at, const std::string& why) const {
    return absl::InvalidArgumentError(
        absl::StrFormat("op batch: %s at byte %d", why, at));
  }

 private:
  absl::Status Truncated(const char* what) const {
    return Bad(pos_, absl::StrFormat("truncated %s", what));
  }

  absl::Span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

// Reads `count` keys (and values when `pairs`) into op->args.
absl::Status ReadArgs(Reader& r, uint64_t count, bool pairs, Op* op) {
  op->args.resize(count * (pairs ? 2 : 1));
  for (size_t i = 0; i < op->args.size(); ++i) {
    const bool is_value = pairs && (i % 2 == 1);
    auto s = is_value ? r.Bytes(kValueBytesMax, "value", &op->args[i])
                      : r.Bytes(kKeyBytesMax, "key", &op->args[i]);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// Reads a repeat count (DEL keys, MSET pairs): >= 1, and args <= the limit.
absl::Status ReadCount(Reader& r, uint64_t per_item, uint64_t* count) {
  const size_t start = r.offset();
  if (auto s = r.Varint(count); !s.ok()) return s;
  if (*count == 0) return r.Bad(start, "zero argument count");
  if (*count > kArgsPerOpMax / per_item) {
    return r.Bad(start, absl::StrFormat("argument count %d exceeds %d",
                                        *count * per_item, kArgsPerOpMax));
  }
  // Each argument takes at least its length byte: a count beyond the input
  // is corrupt, and rejecting it here bounds the allocation in ReadArgs.
  if (*count * per_item > r.remaining()) return r.Bad(start, "argument count beyond input");
  return absl::OkStatus();
}

absl::Status ReadOp(Reader& r, Op* op) {
  const size_t start = r.offset();
  uint8_t code = 0;
  if (auto s = r.Byte(&code); !s.ok()) return s;
  op->code = static_cast<OpCode>(code);
  switch (op->code) {
    case OpCode::kSet:
    case OpCode::kAppend:
      return ReadArgs(r, 1, /*pairs=*/true, op);
    case OpCode::kDel: {
      uint64_t count = 0;
      if (auto s = ReadCount(r, 1, &count); !s.ok()) return s;
      return ReadArgs(r, count, /*pairs=*/false, op);
    }
    case OpCode::kIncrBy: {
      if (auto s = ReadArgs(r, 1, /*pairs=*/false, op); !s.ok()) return s;
      uint64_t zz = 0;
      if (auto s = r.Varint(&zz); !s.ok()) return s;
      op->delta = UnZigZag(zz);
      return absl::OkStatus();
    }
    case OpCode::kMSet: {
      uint64_t pairs = 0;
      if (auto s = ReadCount(r, 2, &pairs); !s.ok()) return s;
      return ReadArgs(r, pairs, /*pairs=*/true, op);
    }
  }
  return r.Bad(start, absl::StrFormat("unknown opcode %d", code));
}

}  // namespace

absl::Status ValidateOp(const Op& op) {
  absl::Status s;
  switch (op.code) {
    case OpCode::kSet:
      s = CheckArity(op, "SET", op.args.size() == 2);
      break;
    case OpCode::kAppend:
      s = CheckArity(op, "APPEND", op.args.size() == 2);
      break;
    case OpCode::kIncrBy:
      s = CheckArity(op, "INCRBY", op.args.size() == 1);
      break;
    case OpCode::kDel:
      s = CheckArity(op, "DEL", !op.args.empty() && op.args.size() <= kArgsPerOpMax);
      break;
    case OpCode::kMSet:
      s = CheckArity(op, "MSET",
                     !op.args.empty() && op.args.size() % 2 == 0 &&
                         op.args.size() <= kArgsPerOpMax);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrFormat("unknown opcode %d", static_cast<int>(op.code)));
  }
  if (!s.ok()) return s;
  // The encoding carries a delta only for INCRBY; a stray one would be lost.
  if (op.code != OpCode::kIncrBy && op.delta != 0) {
    return absl::InvalidArgumentError("delta is only meaningful for INCRBY");
  }
  const bool pairs = op.code == OpCode::kSet || op.code == OpCode::kAppend ||
                     op.code == OpCode::kMSet;
  for (size_t i = 0; i < op.args.size(); ++i) {
    s = (pairs && i % 2 == 1) ? CheckValue(op.args[i], i) : CheckKey(op.args[i], i);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string EncodeBatch(absl::Span<const Op> ops) {
  ABSL_RAW_CHECK(ops.size() <= kOpsPerBatchMax, "EncodeBatch: too many ops");
  size_t bytes = 1 + kVarintBytesMax;
  for (const Op& op : ops) {
    bytes += 1 + 2 * kVarintBytesMax;
    for (const std::string& a : op.args) bytes += a.size() + kVarintBytesMax;
  }
  std::string out;
  out.reserve(bytes);
  out.push_back(static_cast<char>(kBatchVersion));
  PutVarint(ops.size(), &out);
  for (const Op& op : ops) {
    // Callers validate untrusted ops first; an invalid op here is a bug.
    ABSL_RAW_CHECK(ValidateOp(op).ok(), "EncodeBatch: invalid op");
    out.push_back(static_cast<char>(op.code));
    switch (op.code) {
      case OpCode::kSet:
      case OpCode::kAppend:
      case OpCode::kIncrBy:
        break;  // Fixed arity: no count on the wire.
      case OpCode::kDel:
        PutVarint(op.args.size(), &out);
        break;
      case OpCode::kMSet:
        PutVarint(op.args.size() / 2, &out);
        break;
    }
    for (const std::string& a : op.args) PutBytes(a, &out);
    if (op.code == OpCode::kIncrBy) PutVarint(ZigZag(op.delta), &out);
  }
  ABSL_RAW_CHECK(out.size() <= bytes, "EncodeBatch: size estimate too small");
  return out;
}

absl::StatusOr<std::vector<Op>> DecodeBatch(absl::Span<const uint8_t> bytes) {
  Reader r(bytes);
  uint8_t version = 0;
  if (auto s = r.Byte(&version); !s.ok()) return s;
  if (version != kBatchVersion) {
    return r.Bad(0, absl::StrFormat("unsupported version %d (this build reads %d)",
                                    version, kBatchVersion));
  }
  uint64_t count = 0;
  if (auto s = r.Varint(&count); !s.ok()) return s;
  if (count > kOpsPerBatchMax) {
    return r.Bad(1, absl::StrFormat("op count %d exceeds %d", count, kOpsPerBatchMax));
  }
  if (count > r.remaining() / kOpBytesMin) return r.Bad(1, "op count beyond input");
  std::vector<Op> ops(count);
  for (Op& op : ops) {
    if (auto s = ReadOp(r, &op); !s.ok()) return s;
    // The wire grammar already enforces arity and sizes; this re-check is the
    // paired assertion of what the decoder promises its callers.
    ABSL_RAW_CHECK(ValidateOp(op).ok(), "DecodeBatch produced an invalid op");
  }
  if (r.remaining() != 0) {
    return r.Bad(r.offset(), absl::StrFormat("%d trailing bytes", r.remaining()));
  }
  return ops;
}

}  // namespace blizzard::structures
