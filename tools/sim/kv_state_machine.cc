#include "tools/sim/kv_state_machine.h"

#include <cstring>
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

// Snapshot encoding, little-endian (FORMAT.md):
//   magic u32 'KVS1', applied u64, data count u32, (key, value)*,
//   session count u32, (client u64, last_seq u64, last_index u64, ok u8,
//   value)*, where strings are u32 length + bytes.
namespace {

constexpr uint32_t kSnapshotMagic = 0x3153564b;  // "KVS1"

void PutU32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
void PutU64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
void PutString(std::string& out, absl::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out.append(s.data(), s.size());
}

class SnapshotReader {
 public:
  explicit SnapshotReader(absl::string_view in) : in_(in) {}
  bool U8(uint8_t* v) { return Raw(v, 1); }
  bool U32(uint32_t* v) { return Raw(v, 4); }
  bool U64(uint64_t* v) { return Raw(v, 8); }
  bool String(std::string* s) {
    uint32_t n = 0;
    if (!U32(&n) || n > in_.size()) return false;
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool done() const { return in_.empty(); }
  size_t remaining() const { return in_.size(); }

 private:
  bool Raw(void* p, size_t n) {
    if (in_.size() < n) return false;
    std::memcpy(p, in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  absl::string_view in_;
};

}  // namespace

std::string KvStateMachine::Serialize() const {
  std::string out;
  PutU32(out, kSnapshotMagic);
  PutU64(out, applied_index_);
  PutU32(out, static_cast<uint32_t>(data_.size()));
  for (const auto& [key, value] : data_) {
    PutString(out, key);
    PutString(out, value);
  }
  PutU32(out, static_cast<uint32_t>(sessions_.size()));
  for (const auto& [client, s] : sessions_) {
    PutU64(out, client);
    PutU64(out, s.last_seq);
    PutU64(out, s.last_index);
    out.push_back(s.result.ok ? 1 : 0);
    PutString(out, s.result.value);
  }
  return out;
}

absl::Status KvStateMachine::Restore(absl::string_view bytes) {
  SnapshotReader r(bytes);
  uint32_t magic = 0;
  uint64_t applied = 0;
  uint32_t keys = 0;
  if (!r.U32(&magic) || magic != kSnapshotMagic || !r.U64(&applied) || !r.U32(&keys) ||
      keys > r.remaining() / 8) {
    return absl::InvalidArgumentError("snapshot header");
  }
  std::map<std::string, std::string> data;
  for (uint32_t i = 0; i < keys; ++i) {
    std::string key;
    std::string value;
    if (!r.String(&key) || !r.String(&value) || !data.emplace(std::move(key), std::move(value)).second) {
      return absl::InvalidArgumentError("snapshot data");
    }
  }
  uint32_t count = 0;
  if (!r.U32(&count) || count > r.remaining() / 29) {
    return absl::InvalidArgumentError("snapshot session count");
  }
  std::map<uint64_t, SessionRecord> sessions;
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t client = 0;
    uint8_t ok = 0;
    SessionRecord s;
    if (!r.U64(&client) || !r.U64(&s.last_seq) || !r.U64(&s.last_index) || !r.U8(&ok) || ok > 1 ||
        !r.String(&s.result.value) || !sessions.emplace(client, s).second) {
      return absl::InvalidArgumentError("snapshot sessions");
    }
    sessions[client].result.ok = ok == 1;
  }
  if (!r.done()) return absl::InvalidArgumentError("snapshot trailing bytes");
  applied_index_ = applied;
  data_ = std::move(data);
  sessions_ = std::move(sessions);
  return absl::OkStatus();
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
