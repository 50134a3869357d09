// Logical operations on the keyspace and their compact binary encoding.
// This is what logical replication ships through Raft: a batch of ops per
// log entry. Format: structures/FORMAT.md ("operation batch").
// Entries come from peers and disk: DecodeBatch validates everything.
#ifndef BLIZZARD_STRUCTURES_OP_H_
#define BLIZZARD_STRUCTURES_OP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace blizzard::structures {

enum class OpCode : uint8_t {
  kSet = 1,     // args: key, value                  -> OK
  kDel = 2,     // args: key...  (>= 1)              -> integer (keys removed)
  kIncrBy = 3,  // args: key; delta                  -> integer or error
  kAppend = 4,  // args: key, value                  -> integer (new length)
  kMSet = 5,    // args: key, value, key, value...   -> OK
};

struct Op {
  OpCode code = OpCode::kSet;
  std::vector<std::string> args;
  int64_t delta = 0;  // kIncrBy only.
  bool operator==(const Op&) const = default;
};

// Limits checked by both Encode (assert) and Decode (error).
inline constexpr uint32_t kOpsPerBatchMax = 1u << 16;
inline constexpr uint32_t kArgsPerOpMax = 1u << 16;
inline constexpr uint64_t kKeyBytesMax = 64u << 10;
inline constexpr uint64_t kValueBytesMax = 16u << 20;

// InvalidArgument if the op is malformed (wrong arity, sizes over limits).
absl::Status ValidateOp(const Op& op);

std::string EncodeBatch(absl::Span<const Op> ops);
absl::StatusOr<std::vector<Op>> DecodeBatch(absl::Span<const uint8_t> bytes);

// The result of applying one op (mapped to a RESP reply by node/).
struct OpResult {
  enum class Kind : uint8_t { kOk, kInteger, kBulk, kNil, kError };
  Kind kind = Kind::kOk;
  int64_t integer = 0;
  std::string text;  // kBulk: the value; kError: "ERR ..." message.
  bool operator==(const OpResult&) const = default;
};

}  // namespace blizzard::structures

#endif  // BLIZZARD_STRUCTURES_OP_H_
