// The replicated state machine of a simulated node: a key-value map plus a
// session table (exactly-once semantics), with its applied index.
//
// Fault model (modelling the data pool, where applying one entry is ONE
// pmemobj transaction that also stores the applied index and the session
// table): the object itself IS the durable image. Apply() changes data,
// sessions and the applied index together, so a crash leaves the state
// after some whole entry, never in between. Crash() throws away what would
// be volatile: nothing, unless the planted bug `sessions_durable = false`
// keeps the session table in DRAM only.
//
// Sessions: every write carries (client, seq). A write whose seq is not
// above its client's last applied seq is not executed again: seq == last
// answers the recorded result (a retry), seq < last is stale (the client
// has moved on; nobody waits for the answer). The rule is applied at apply
// time, on every replica alike, so replicas stay identical whatever the
// leaders proposed (a retried request may sit in the log twice).
#ifndef BLIZZARD_TOOLS_SIM_KV_STATE_MACHINE_H_
#define BLIZZARD_TOOLS_SIM_KV_STATE_MACHINE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "consensus/types.h"
#include "tools/sim/command.h"

namespace blizzard::sim {

struct SessionRecord {
  uint64_t last_seq = 0;
  CommandResult result;     // Of last_seq.
  uint64_t last_index = 0;  // Entry that applied last_seq (eviction order).
  bool operator==(const SessionRecord&) const = default;
};

struct KvStateMachineOptions {
  // Planted bug for the simulator's self-test: the session table is not part
  // of the durable image and is lost on Crash().
  bool sessions_durable = true;
  // Planted bug: no duplicate detection at all.
  bool deduplicate = true;
  // Sessions kept; beyond, the one applied longest ago is evicted
  // (deterministically, so replicas agree). The simulator's clients never
  // come near it.
  size_t sessions_max = 1u << 16;
};

enum class ApplyOutcome : uint8_t {
  kExecuted,   // Changed (or could have changed) the data.
  kDuplicate,  // seq == session's last: answered from the table.
  kStale,      // seq < session's last: ignored.
};

struct AppliedCommand {
  Command command;
  CommandResult result;
  ApplyOutcome outcome = ApplyOutcome::kExecuted;
};

class KvStateMachine {
 public:
  explicit KvStateMachine(const KvStateMachineOptions& options = {});

  // Applies the committed entry at applied_index() + 1 (asserted). A no-op
  // or empty entry only advances the index. InvalidArgument if the payload
  // does not decode: the replica must stop (nothing was applied).
  absl::StatusOr<std::vector<AppliedCommand>> Apply(const consensus::Entry& entry);

  // A linearizable read, once the caller has made sure applied_index() is
  // at least the read's ReadIndex.
  CommandResult Read(absl::string_view key) const;

  // The session of `client`, or null.
  const SessionRecord* FindSession(uint64_t client) const;

  // A power failure: loses the volatile state (see the file comment).
  void Crash();

  // Snapshots (FORMAT.md, "State machine snapshot"): the whole durable
  // image (data, sessions, applied index) as bytes, and back. Restore
  // replaces everything, atomically (InvalidArgument on malformed bytes,
  // leaving the state unchanged).
  std::string Serialize() const;
  absl::Status Restore(absl::string_view bytes);

  uint64_t applied_index() const { return applied_index_; }
  // Hash of the data and the applied index (the design's "state hash").
  uint64_t DataHash() const;
  // Hash of the session table: replicas at the same index agree on it too.
  uint64_t SessionsHash() const;
  const std::map<std::string, std::string>& data() const { return data_; }
  const std::map<uint64_t, SessionRecord>& sessions() const { return sessions_; }

 private:
  CommandResult Execute(const Command& command);

  const KvStateMachineOptions options_;
  uint64_t applied_index_ = 0;
  // Ordered maps: hashing and eviction must not depend on a hash seed.
  std::map<std::string, std::string> data_;
  std::map<uint64_t, SessionRecord> sessions_;
};

}  // namespace blizzard::sim

#endif  // BLIZZARD_TOOLS_SIM_KV_STATE_MACHINE_H_
