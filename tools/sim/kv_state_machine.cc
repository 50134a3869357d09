#include "tools/sim/kv_state_machine.h"

#include <utility>

#include <xxhash.h>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_cat.h"

namespace blizzard::sim {
namespace {

uint64_t HashBytes(absl::string_view s, uint64_t seed) {
  return XXH3_64bits_withSeed(s.data(), s.size(), seed);
}

uint64_t HashU64(uint64_t v, uint64_t seed) { return XXH3_64bits_withSeed(&v, sizeof(v), seed); }

}  // namespace

KvStateMachine::KvStateMachine(const KvStateMachineOptions& options) : options_(options) {
  ABSL_RAW_CHECK(options_.sessions_max > 0, "sessions_max must be positive");
}

absl::StatusOr<std::vector<AppliedCommand>> KvStateMachine::Apply(const consensus::Entry& entry) {
  ABSL_RAW_CHECK(entry.index == applied_index_ + 1, "entries must be applied in order, once");
  std::vector<AppliedCommand> out;
  if (entry.type == consensus::EntryType::kNormal && !entry.data.empty()) {
    // Decode everything before changing anything: a bad entry applies
    // nothing (the transaction aborts).
    absl::StatusOr<std::vector<Command>> batch = DecodeBatch(entry.data);
    if (!batch.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("entry ", entry.index, ": ", batch.status().message()));
    }
    out.reserve(batch->size());
    for (Command& c : *batch) {
      AppliedCommand applied;
      auto it = sessions_.find(c.client);
      if (options_.deduplicate && it != sessions_.end() && c.seq <= it->second.last_seq) {
        if (c.seq == it->second.last_seq) {
          applied.outcome = ApplyOutcome::kDuplicate;
          applied.result = it->second.result;
        } else {
          applied.outcome = ApplyOutcome::kStale;
          applied.result.ok = false;
        }
      } else {
        applied.result = Execute(c);
        SessionRecord& session = sessions_[c.client];
        session.last_seq = c.seq;
        session.result = applied.result;
        session.last_index = entry.index;
      }
      applied.command = std::move(c);
      out.push_back(std::move(applied));
    }
    while (sessions_.size() > options_.sessions_max) {
      auto oldest = sessions_.begin();
      for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
        if (it->second.last_index < oldest->second.last_index) oldest = it;
      }
      sessions_.erase(oldest);
    }
  }
  applied_index_ = entry.index;
  return out;
}

CommandResult KvStateMachine::Execute(const Command& c) {
  ABSL_RAW_CHECK(IsWrite(c.kind), "reads are not executed through the log");
  CommandResult result;
  switch (c.kind) {
    case OpKind::kGet:
      break;
    case OpKind::kPut:
      data_[c.key] = c.value;
      break;
    case OpKind::kAppend:
      data_[c.key].append(c.value);
      break;
    case OpKind::kDelete:
      result.ok = data_.erase(c.key) == 1;
      break;
    case OpKind::kCas: {
      auto it = data_.find(c.key);
      const bool matches = c.expected.has_value()
                               ? (it != data_.end() && it->second == *c.expected)
                               : it == data_.end();
      result.ok = matches;
      if (matches) data_[c.key] = c.value;
      break;
    }
  }
  return result;
}

CommandResult KvStateMachine::Read(absl::string_view key) const {
  CommandResult result;
  auto it = data_.find(std::string(key));
  result.ok = it != data_.end();
  if (result.ok) result.value = it->second;
  return result;
}

const SessionRecord* KvStateMachine::FindSession(uint64_t client) const {
  auto it = sessions_.find(client);
  return it == sessions_.end() ? nullptr : &it->second;
}

void KvStateMachine::Crash() {
  if (!options_.sessions_durable) sessions_.clear();
}

uint64_t KvStateMachine::DataHash() const {
  uint64_t h = HashU64(applied_index_, 0x6b76);
  for (const auto& [key, value] : data_) h = HashBytes(value, HashBytes(key, h));
  return h;
}

uint64_t KvStateMachine::SessionsHash() const {
  uint64_t h = 0x5e55;
  for (const auto& [client, s] : sessions_) {
    h = HashU64(client, h);
    h = HashU64(s.last_seq, h);
    h = HashU64(s.last_index, h);
    h = HashU64(s.result.ok ? 1 : 0, h);
    h = HashBytes(s.result.value, h);
  }
  return h;
}

}  // namespace blizzard::sim
