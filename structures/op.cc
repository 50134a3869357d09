// Operation batch encoding. The grammar is in structures/FORMAT.md
// ("Operation batch"); this file is its only reader and writer.
#include "structures/op.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/base/internal/raw_logging.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "structures/codec.h"

namespace blizzard::structures {
namespace {

constexpr uint8_t kBatchVersion = 2;  // 1: strings only (no typed ops).
// Smallest encoding of any op (code + one empty key + one more byte: a
// value length, a key count or a delta). Bounds `reserve` against the input
// size, so a forged op count cannot make the decoder allocate.
constexpr size_t kOpBytesMin = 3;
using codec::kVarintBytesMax;

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

using codec::PutBytes;
using codec::PutVarint;
using codec::UnZigZag;
using codec::ZigZag;

// The op batch's reader: codec::Reader named for error messages.
class Reader : public codec::Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> bytes) : codec::Reader(bytes, "op batch") {}
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
    case OpCode::kLPush:
    case OpCode::kRPush:
    case OpCode::kSAdd:
    case OpCode::kSRem:
    case OpCode::kZRem: {
      // The argument count includes the key: >= 2.
      const size_t at = r.offset();
      uint64_t count = 0;
      if (auto s = ReadCount(r, 1, &count); !s.ok()) return s;
      if (count < 2) return r.Bad(at, "key without elements");
      op->args.resize(count);
      if (auto s = r.Bytes(kKeyBytesMax, "key", &op->args[0]); !s.ok()) return s;
      for (size_t i = 1; i < count; ++i) {
        if (auto s = r.Bytes(kValueBytesMax, "element", &op->args[i]); !s.ok()) return s;
      }
      return absl::OkStatus();
    }
    case OpCode::kLPop:
    case OpCode::kRPop:
    case OpCode::kZPopMin:
    case OpCode::kZPopMax: {
      if (auto s = ReadArgs(r, 1, /*pairs=*/false, op); !s.ok()) return s;
      const size_t at = r.offset();
      uint64_t zz = 0;
      if (auto s = r.Varint(&zz); !s.ok()) return s;
      op->delta = UnZigZag(zz);
      if (op->delta < kNoCount) return r.Bad(at, "negative count");
      return absl::OkStatus();
    }
    case OpCode::kZAdd: {
      const size_t at = r.offset();
      uint64_t pairs = 0;
      // Each pair takes >= 9 bytes (score, member length).
      if (auto s = ReadCount(r, 9, &pairs); !s.ok()) return s;
      (void)at;
      op->args.resize(pairs + 1);
      op->scores.resize(pairs);
      if (auto s = r.Bytes(kKeyBytesMax, "key", &op->args[0]); !s.ok()) return s;
      for (size_t i = 0; i < pairs; ++i) {
        const size_t score_at = r.offset();
        uint64_t bits = 0;
        if (auto s = r.Fixed64(&bits); !s.ok()) return s;
        std::memcpy(&op->scores[i], &bits, 8);
        if (std::isnan(op->scores[i])) return r.Bad(score_at, "NaN score");
        if (auto s = r.Bytes(kValueBytesMax, "member", &op->args[i + 1]); !s.ok()) return s;
      }
      return absl::OkStatus();
    }
  }
  return r.Bad(start, absl::StrFormat("unknown opcode %d", code));
}

}  // namespace

bool MayGrowMemory(OpCode code) {
  switch (code) {
    case OpCode::kSet:
    case OpCode::kMSet:
    case OpCode::kIncrBy:
    case OpCode::kAppend:
    case OpCode::kLPush:
    case OpCode::kRPush:
    case OpCode::kSAdd:
    case OpCode::kZAdd:
      return true;
    case OpCode::kDel:
    case OpCode::kLPop:
    case OpCode::kRPop:
    case OpCode::kSRem:
    case OpCode::kZRem:
    case OpCode::kZPopMin:
    case OpCode::kZPopMax:
      return false;
  }
  return true;
}

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
    case OpCode::kLPush:
    case OpCode::kRPush:
    case OpCode::kSAdd:
    case OpCode::kSRem:
    case OpCode::kZRem:
    case OpCode::kZAdd:
      s = CheckArity(op, "a variadic typed op",
                     op.args.size() >= 2 && op.args.size() <= kArgsPerOpMax);
      break;
    case OpCode::kLPop:
    case OpCode::kRPop:
    case OpCode::kZPopMin:
    case OpCode::kZPopMax:
      s = CheckArity(op, "a pop", op.args.size() == 1);
      if (s.ok() && op.delta < kNoCount) return absl::InvalidArgumentError("negative count");
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrFormat("unknown opcode %d", static_cast<int>(op.code)));
  }
  if (!s.ok()) return s;
  const bool pops = op.code == OpCode::kLPop || op.code == OpCode::kRPop ||
                    op.code == OpCode::kZPopMin || op.code == OpCode::kZPopMax;
  // The encoding carries a delta only for INCRBY and pops; a stray one
  // would be lost.
  if (op.code != OpCode::kIncrBy && !pops && op.delta != 0) {
    return absl::InvalidArgumentError("delta is only meaningful for INCRBY and pops");
  }
  if (op.code == OpCode::kZAdd) {
    if (op.scores.size() + 1 != op.args.size()) {
      return absl::InvalidArgumentError("ZADD needs one score per member");
    }
    for (double d : op.scores) {
      if (std::isnan(d)) return absl::InvalidArgumentError("NaN score");
    }
  } else if (!op.scores.empty()) {
    return absl::InvalidArgumentError("scores are only meaningful for ZADD");
  }
  const bool pairs = op.code == OpCode::kSet || op.code == OpCode::kAppend ||
                     op.code == OpCode::kMSet;
  const bool elements = op.code >= OpCode::kLPush && !pops;  // Key, then elements.
  for (size_t i = 0; i < op.args.size(); ++i) {
    const bool value = pairs ? i % 2 == 1 : (elements && i > 0);
    s = value ? CheckValue(op.args[i], i) : CheckKey(op.args[i], i);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string EncodeBatch(absl::Span<const Op> ops) {
  ABSL_RAW_CHECK(ops.size() <= kOpsPerBatchMax, "EncodeBatch: too many ops");
  size_t bytes = 1 + kVarintBytesMax;
  for (const Op& op : ops) {
    bytes += 1 + 2 * kVarintBytesMax + 8 * op.scores.size();
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
      case OpCode::kLPop:
      case OpCode::kRPop:
      case OpCode::kZPopMin:
      case OpCode::kZPopMax:
        break;  // Fixed arity: no count on the wire.
      case OpCode::kDel:
      case OpCode::kLPush:
      case OpCode::kRPush:
      case OpCode::kSAdd:
      case OpCode::kSRem:
      case OpCode::kZRem:
        PutVarint(op.args.size(), &out);
        break;
      case OpCode::kMSet:
        PutVarint(op.args.size() / 2, &out);
        break;
      case OpCode::kZAdd:
        PutVarint(op.scores.size(), &out);
        PutBytes(op.args[0], &out);
        for (size_t i = 0; i < op.scores.size(); ++i) {
          uint64_t bits = 0;
          std::memcpy(&bits, &op.scores[i], 8);
          codec::PutFixed64(bits, &out);
          PutBytes(op.args[i + 1], &out);
        }
        continue;
    }
    for (const std::string& a : op.args) PutBytes(a, &out);
    if (op.code == OpCode::kIncrBy || op.code == OpCode::kLPop || op.code == OpCode::kRPop ||
        op.code == OpCode::kZPopMin || op.code == OpCode::kZPopMax) {
      PutVarint(ZigZag(op.delta), &out);
    }
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

std::string FormatScore(double score) {
  if (std::isinf(score)) return score > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), score);
  ABSL_RAW_CHECK(r.ec == std::errc(), "FormatScore: to_chars failed");
  return std::string(buf, r.ptr);
}

bool ParseScore(std::string_view text, double* score) {
  if (text.empty() || text.size() > 128) return false;
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "inf" || lower == "+inf" || lower == "infinity" || lower == "+infinity") {
    *score = HUGE_VAL;
    return true;
  }
  if (lower == "-inf" || lower == "-infinity") {
    *score = -HUGE_VAL;
    return true;
  }
  // from_chars rejects a leading '+', which strtod (Redis) accepts.
  std::string_view digits = text;
  if (digits[0] == '+') digits.remove_prefix(1);
  if (digits.empty() || (digits[0] == '-' && text[0] == '+')) return false;
  double d = 0;
  const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), d);
  if (r.ec != std::errc() || r.ptr != digits.data() + digits.size() || std::isnan(d)) {
    return false;
  }
  *score = d;
  return true;
}

}  // namespace blizzard::structures
