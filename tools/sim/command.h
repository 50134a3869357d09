// The simulated cluster's logical operations and their two encodings
// (FORMAT.md): a batch of writes inside one Raft entry, and the request /
// reply messages between simulated clients and nodes.
//
// Every write carries its client's session id and sequence number, so the
// replicated state machine can answer a retried request from its session
// table instead of applying it twice (kv_state_machine.h).
//
// Entries come from the (simulated) persistent log and messages from the
// (simulated) network: the decoders validate everything and never crash.
#ifndef BLIZZARD_TOOLS_SIM_COMMAND_H_
#define BLIZZARD_TOOLS_SIM_COMMAND_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace blizzard::sim {

enum class OpKind : uint8_t {
  kGet = 1,     // Read: served through ReadIndex, never in an entry.
  kPut = 2,     // key := value
  kAppend = 3,  // key := key + value (a missing key starts empty)
  kDelete = 4,  // remove key; result.ok = it existed
  kCas = 5,     // if key == expected (nullopt: absent) then key := value
};
const char* OpKindName(OpKind kind);
bool IsWrite(OpKind kind);

// Limits checked by the encoders (assert) and decoders (error).
inline constexpr uint64_t kKeyBytesMax = 256;
inline constexpr uint64_t kValueBytesMax = 64u << 10;
inline constexpr uint32_t kBatchCommandsMax = 4096;

struct Command {
  uint64_t client = 0;  // Session id, nonzero.
  uint64_t seq = 0;     // The client's request number: 1, 2, ... (nonzero).
  OpKind kind = OpKind::kGet;
  std::string key;
  std::string value;                    // kPut, kAppend, kCas (new value).
  std::optional<std::string> expected;  // kCas only.
  bool operator==(const Command&) const = default;
};

// InvalidArgument naming the problem: zero client or seq, unknown kind, an
// empty or oversize key, an oversize value, a value on kGet/kDelete, an
// expected value on anything but kCas.
absl::Status ValidateCommand(const Command& command);
std::string DescribeCommand(const Command& command);

struct CommandResult {
  // kGet: found; kDelete: existed; kCas: swapped; kPut/kAppend: true.
  bool ok = true;
  std::string value;  // kGet when found.
  bool operator==(const CommandResult&) const = default;
};

// ---- Raft entry payload: a batch of writes (version 1). ----
std::string EncodeBatch(absl::Span<const Command> commands);
// InvalidArgument for anything malformed (version, truncation, trailing
// bytes, an invalid command, a read in the batch, too many commands).
absl::StatusOr<std::vector<Command>> DecodeBatch(absl::string_view bytes);

// ---- Client <-> node messages on the simulated network. ----
enum class ReplyStatus : uint8_t {
  kOk = 1,         // Done; `result` holds the outcome.
  kNotLeader = 2,  // Not proposed; try `leader_hint` (0: unknown).
  kUnknown = 3,    // Proposed, but leadership changed first: may or may not
                   // be applied; retry with the same seq (the session table
                   // makes that safe).
  kBusy = 4,       // Not proposed (a limit was hit); retry later.
  kStale = 5,      // seq is older than the session's last applied request.
};
const char* ReplyStatusName(ReplyStatus status);

struct Reply {
  uint64_t client = 0;
  uint64_t seq = 0;
  ReplyStatus status = ReplyStatus::kOk;
  uint64_t leader_hint = 0;
  CommandResult result;
  bool operator==(const Reply&) const = default;
};

std::string EncodeRequest(const Command& command);
std::string EncodeReply(const Reply& reply);
// True if the payload is a client request (else a reply, or junk).
bool IsRequest(absl::Span<const uint8_t> bytes);
absl::StatusOr<Command> DecodeRequest(absl::Span<const uint8_t> bytes);
absl::StatusOr<Reply> DecodeReply(absl::Span<const uint8_t> bytes);

}  // namespace blizzard::sim

#endif  // BLIZZARD_TOOLS_SIM_COMMAND_H_
