// Logical operations on the keyspace and their compact binary encoding.
// This is what logical replication ships through Raft: a batch of ops per
// log entry. Format: structures/FORMAT.md ("operation batch").
// Entries come from peers and disk: DecodeBatch validates everything.
#ifndef BLIZZARD_STRUCTURES_OP_H_
#define BLIZZARD_STRUCTURES_OP_H_

#include <cstdint>
#include <string>
#include <string_view>
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
  // Typed keyspace (batch version 2). Variadic ops: args[0] is the key.
  kLPush = 6,    // args: key, element...  (>= 1)    -> integer (length)
  kRPush = 7,    // args: key, element...  (>= 1)    -> integer (length)
  kLPop = 8,     // args: key; delta = count or kNoCount -> bulk/nil or array/nil array
  kRPop = 9,     // args: key; delta = count or kNoCount
  kSAdd = 10,    // args: key, member...   (>= 1)    -> integer (added)
  kSRem = 11,    // args: key, member...   (>= 1)    -> integer (removed)
  kZAdd = 12,    // args: key, member...; scores[i] for args[i+1] -> integer (added)
  kZRem = 13,    // args: key, member...   (>= 1)    -> integer (removed)
  kZPopMin = 14, // args: key; delta = count or kNoCount -> array (member, score...)
  kZPopMax = 15, // args: key; delta = count or kNoCount
};

// LPOP/RPOP/ZPOPMIN/ZPOPMAX without a count argument (the reply shape
// differs from an explicit count: Redis returns a bulk, not an array).
inline constexpr int64_t kNoCount = -1;

struct Op {
  OpCode code = OpCode::kSet;
  std::vector<std::string> args;
  int64_t delta = 0;  // kIncrBy: the delta; pops: the count or kNoCount.
  std::vector<double> scores{};  // kZAdd only: one per member, never NaN.
  bool operator==(const Op&) const = default;
};

// Limits checked by both Encode (assert) and Decode (error).
inline constexpr uint32_t kOpsPerBatchMax = 1u << 16;
inline constexpr uint32_t kArgsPerOpMax = 1u << 16;
inline constexpr uint64_t kKeyBytesMax = 64u << 10;
inline constexpr uint64_t kValueBytesMax = 16u << 20;

// InvalidArgument if the op is malformed (wrong arity, sizes over limits).
absl::Status ValidateOp(const Op& op);

// Whether the op may need new arena blocks (Redis's "denyoom" commands):
// SET, MSET, INCRBY, APPEND, LPUSH, RPUSH, SADD, ZADD. DEL, pops and
// removes only free memory (an emptied container is deleted). Admission
// control refuses the former when the arena is nearly full.
bool MayGrowMemory(OpCode code);

std::string EncodeBatch(absl::Span<const Op> ops);
absl::StatusOr<std::vector<Op>> DecodeBatch(absl::Span<const uint8_t> bytes);

// Sorted-set scores as Redis 7 prints them: the shortest text that reads
// back as the same double ("1", "1.5", "inf", "-inf").
std::string FormatScore(double score);
// Redis's strtod rules for scores: a whole-string decimal or
// "inf"/"+inf"/"-inf" (any case); NaN and trailing junk are refused.
bool ParseScore(std::string_view text, double* score);

// The result of applying one op (mapped to a RESP reply by node/).
struct OpResult {
  // kNilArray: RESP's null array (*-1), e.g. LPOP key count on no key.
  enum class Kind : uint8_t { kOk, kInteger, kBulk, kNil, kError, kArray, kNilArray };
  Kind kind = Kind::kOk;
  int64_t integer = 0;
  std::string text;  // kBulk: the value; kError: "ERR ..." message.
  std::vector<std::string> items{};  // kArray: bulk strings.
  bool operator==(const OpResult&) const = default;
};

}  // namespace blizzard::structures

#endif  // BLIZZARD_STRUCTURES_OP_H_
