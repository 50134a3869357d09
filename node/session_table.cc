#include "node/session_table.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_cat.h"
#include "structures/codec.h"

namespace blizzard::node {
namespace {

using structures::Op;
using structures::OpCode;
using structures::OpResult;

// Reserved keys: the tag pseudo-op's key, and "s" + big-endian client id
// for records (node/README.md, "Client sessions").
std::string TagKey() { return absl::StrCat(std::string(kReservedPrefix), "tag"); }
std::string RecordPrefix() { return absl::StrCat(std::string(kReservedPrefix), "s"); }

void Put64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
uint64_t Get64(std::string_view in, size_t at) {
  uint64_t v;
  std::memcpy(&v, in.data() + at, 8);
  return v;
}

// Record: seq:u64 last_index:u64 kind:u8 integer:u64 (little-endian), then
// for kArray: count:uvarint (len:uvarint bytes)*count; for every other
// kind: the text (node/README.md, "Client sessions").
constexpr size_t kRecordFixedBytes = 25;  // seq, last_index, kind, integer.
constexpr uint8_t kKindMax = static_cast<uint8_t>(OpResult::Kind::kNilArray);

absl::StatusOr<SessionTable::Record> DecodeRecord(std::string_view v) {
  if (v.size() < kRecordFixedBytes || static_cast<uint8_t>(v[16]) > kKindMax) {
    return absl::DataLossError("malformed session record");
  }
  SessionTable::Record r;
  r.seq = Get64(v, 0);
  r.last_index = Get64(v, 8);
  r.result.kind = static_cast<OpResult::Kind>(v[16]);
  r.result.integer = static_cast<int64_t>(Get64(v, 17));
  const std::string_view tail = v.substr(kRecordFixedBytes);
  if (r.result.kind == OpResult::Kind::kArray) {
    structures::codec::Reader reader(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(tail.data()), tail.size()),
        "session record");
    uint64_t n = 0;
    if (auto s = reader.Varint(&n); !s.ok() || n > tail.size()) {
      return absl::DataLossError("malformed session record: array count");
    }
    r.result.items.resize(n);
    for (std::string& item : r.result.items) {
      if (auto s = reader.Bytes(tail.size(), "item", &item); !s.ok()) {
        return absl::DataLossError(absl::StrCat("malformed session record: ", s.message()));
      }
    }
    if (reader.remaining() != 0) {
      return absl::DataLossError("malformed session record: trailing bytes");
    }
  } else {
    r.result.text = std::string(tail);
  }
  if (r.seq == 0) return absl::DataLossError("session record with seq 0");
  return r;
}

}  // namespace

bool IsReservedArgument(std::string_view arg) {
  return arg.size() >= kReservedPrefix.size() &&
         arg.substr(0, kReservedPrefix.size()) == kReservedPrefix;
}

std::string SessionTable::RecordKey(uint64_t client) {
  std::string key = RecordPrefix();
  for (int shift = 56; shift >= 0; shift -= 8) {
    key.push_back(static_cast<char>((client >> shift) & 0xff));
  }
  return key;
}

std::string SessionTable::EncodeRecord(const Record& r) {
  std::string out;
  Put64(out, r.seq);
  Put64(out, r.last_index);
  out.push_back(static_cast<char>(r.result.kind));
  Put64(out, static_cast<uint64_t>(r.result.integer));
  if (r.result.kind == OpResult::Kind::kArray) {
    ABSL_RAW_CHECK(r.result.text.empty(), "an array result with text");
    structures::codec::PutVarint(r.result.items.size(), &out);
    for (const std::string& item : r.result.items) structures::codec::PutBytes(item, &out);
  } else {
    ABSL_RAW_CHECK(r.result.items.empty(), "items in a result that is not an array");
    out += r.result.text;
  }
  return out;
}

void SessionTable::Put(uint64_t client, Record r) {
  Erase(client);
  lru_.insert({r.last_index, client});
  records_[client] = std::move(r);
}

void SessionTable::Erase(uint64_t client) {
  auto it = records_.find(client);
  if (it == records_.end()) return;
  lru_.erase({it->second.last_index, client});
  records_.erase(it);
}

absl::Status SessionTable::Load(const structures::KvStore& store) {
  records_.clear();
  lru_.clear();
  const std::string prefix = RecordPrefix();
  absl::Status status;
  store.ForEach([&](std::string_view key, std::string_view value) {
    if (!status.ok() || !IsReservedArgument(key)) return;
    if (key.size() != prefix.size() + 8 || key.substr(0, prefix.size()) != prefix) {
      status = absl::DataLossError("unknown reserved key in the data pool");
      return;
    }
    uint64_t client = 0;
    for (size_t i = prefix.size(); i < key.size(); ++i) {
      client = (client << 8) | static_cast<uint8_t>(key[i]);
    }
    absl::StatusOr<Record> r = DecodeRecord(value);
    if (!r.ok()) {
      status = r.status();
      return;
    }
    Put(client, std::move(*r));
  });
  return status;
}

const SessionTable::Record* SessionTable::Find(uint64_t client) const {
  auto it = records_.find(client);
  return it == records_.end() ? nullptr : &it->second;
}

void SessionTable::AppendTagged(std::vector<Op>& batch, uint64_t client, uint64_t seq, Op op) {
  ABSL_RAW_CHECK(client != 0 && seq != 0, "session ids are positive");
  std::string tag;
  Put64(tag, client);
  Put64(tag, seq);
  batch.push_back(Op{OpCode::kSet, {TagKey(), std::move(tag)}, 0});
  batch.push_back(std::move(op));
}

absl::StatusOr<SessionTable::Plan> SessionTable::PlanBatch(std::vector<Op> ops) const {
  Plan plan;
  const std::string tag_key = TagKey();
  // Sessions seen earlier in this batch: client -> (seq, slot).
  std::map<uint64_t, std::pair<uint64_t, int>> in_batch;
  for (size_t i = 0; i < ops.size(); ++i) {
    Plan::Slot slot;
    const bool tagged = ops[i].code == OpCode::kSet && ops[i].args.size() == 2 &&
                        ops[i].args[0] == tag_key;
    if (tagged) {
      const std::string& t = ops[i].args[1];
      if (t.size() != 16 || i + 1 >= ops.size()) {
        return absl::InvalidArgumentError("malformed session tag");
      }
      slot.client = Get64(t, 0);
      slot.seq = Get64(t, 8);
      if (slot.client == 0 || slot.seq == 0) return absl::InvalidArgumentError("session id 0");
      ++i;  // The tagged op.
      plan.has_sessions = true;
      uint64_t last_seq = 0;
      const Record* r = Find(slot.client);
      if (auto b = in_batch.find(slot.client); b != in_batch.end()) {
        last_seq = b->second.first;
        if (slot.seq == last_seq) slot.same_as = b->second.second;
      } else if (r != nullptr) {
        last_seq = r->seq;
        if (slot.seq == last_seq) slot.fixed = r->result;
      }
      if (slot.seq < last_seq) {
        slot.fixed = OpResult{OpResult::Kind::kError, 0,
                              absl::StrCat("ERR SESSION stale sequence number ", slot.seq,
                                           " (the session is at ", last_seq, ")")};
      }
      if (slot.seq <= last_seq) {
        plan.slots.push_back(std::move(slot));
        continue;
      }
      in_batch[slot.client] = {slot.seq, static_cast<int>(plan.slots.size())};
    } else {
      for (const std::string& a : ops[i].args) {
        if (IsReservedArgument(a)) {
          return absl::InvalidArgumentError("a client op names a reserved key");
        }
      }
    }
    slot.execute = static_cast<int>(plan.execute.size());
    plan.execute.push_back(std::move(ops[i]));
    plan.slots.push_back(std::move(slot));
  }
  return plan;
}

std::vector<Op> SessionTable::RecordOps(const Plan& plan, absl::Span<const OpResult> results,
                                        uint64_t index) {
  pending_puts_.clear();
  pending_erases_.clear();
  std::map<uint64_t, Record> updates;
  for (const Plan::Slot& s : plan.slots) {
    if (s.client == 0 || s.execute < 0) continue;
    ABSL_RAW_CHECK(static_cast<size_t>(s.execute) < results.size(), "result missing");
    updates[s.client] = Record{s.seq, index, results[s.execute]};
  }
  std::vector<Op> ops;
  if (updates.empty()) return ops;
  // Evict the least recently applied sessions beyond the limit; this
  // batch's own sessions are the most recent (index is above every other).
  size_t new_clients = 0;
  for (const auto& [client, r] : updates) new_clients += records_.count(client) == 0;
  size_t total = records_.size() + new_clients;
  for (auto it = lru_.begin(); total > sessions_max_ && it != lru_.end(); ++it) {
    if (updates.count(it->second) != 0) continue;
    pending_erases_.push_back(it->second);
    ops.push_back(Op{OpCode::kDel, {RecordKey(it->second)}, 0});
    --total;
  }
  // More new sessions in one batch than the table holds: keep the highest
  // client ids (deterministic), drop the rest.
  for (auto it = updates.begin(); total > sessions_max_ && it != updates.end();) {
    if (records_.count(it->first) != 0) {
      pending_erases_.push_back(it->first);
      ops.push_back(Op{OpCode::kDel, {RecordKey(it->first)}, 0});
    }
    it = updates.erase(it);
    --total;
  }
  for (auto& [client, r] : updates) {
    ops.push_back(Op{OpCode::kSet, {RecordKey(client), EncodeRecord(r)}, 0});
    pending_puts_.emplace_back(client, std::move(r));
  }
  return ops;
}

structures::KvStore::Epilogue SessionTable::EpilogueFor(const Plan& plan, uint64_t index) {
  if (!plan.has_sessions) return nullptr;
  return [this, &plan, index](absl::Span<const OpResult> results) {
    return RecordOps(plan, results, index);
  };
}

std::vector<uint64_t> SessionTable::PendingClients() const {
  std::vector<uint64_t> clients = pending_erases_;
  for (const auto& [client, r] : pending_puts_) clients.push_back(client);
  std::sort(clients.begin(), clients.end());
  ABSL_RAW_CHECK(std::adjacent_find(clients.begin(), clients.end()) == clients.end(),
                 "a client both written and evicted by one batch");
  return clients;
}

bool SessionTable::HasSessionOps(absl::Span<const Op> ops) {
  const std::string tag_key = TagKey();
  for (const Op& op : ops) {
    if (op.code == OpCode::kSet && !op.args.empty() && op.args[0] == tag_key) return true;
  }
  return false;
}

absl::Status SessionTable::Refresh(const structures::KvStore& store,
                                   absl::Span<const uint64_t> clients, std::vector<Saved>* undo) {
  for (uint64_t client : clients) {
    const std::string key = RecordKey(client);
    std::optional<Record> now;
    const structures::ValueType type = store.Type(key);
    if (type != structures::ValueType::kNone) {
      std::optional<std::string> value = store.Get(key);
      if (type != structures::ValueType::kString || !value.has_value()) {
        return absl::DataLossError(
            absl::StrCat("session record of client ", client, " is not a string"));
      }
      absl::StatusOr<Record> r = DecodeRecord(*value);
      if (!r.ok()) {
        return absl::DataLossError(
            absl::StrCat("session record of client ", client, ": ", r.status().message()));
      }
      now = std::move(*r);
    }
    if (undo != nullptr) {
      const Record* before = Find(client);
      undo->push_back(Saved{client, before == nullptr ? std::nullopt
                                                      : std::optional<Record>(*before)});
    }
    if (now.has_value()) {
      Put(client, std::move(*now));
    } else {
      Erase(client);
    }
  }
  return absl::OkStatus();
}

void SessionTable::Restore(std::vector<Saved> undo) {
  for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
    if (it->record.has_value()) {
      Put(it->client, std::move(*it->record));
    } else {
      Erase(it->client);
    }
  }
}

void SessionTable::Commit() {
  for (uint64_t client : pending_erases_) Erase(client);
  for (auto& [client, r] : pending_puts_) Put(client, std::move(r));
  pending_puts_.clear();
  pending_erases_.clear();
  ABSL_RAW_CHECK(records_.size() <= sessions_max_, "session table above its limit");
}

std::vector<OpResult> SessionTable::Results(const Plan& plan, absl::Span<const OpResult> results) {
  std::vector<OpResult> out;
  out.reserve(plan.slots.size());
  for (const Plan::Slot& s : plan.slots) {
    if (s.execute >= 0) {
      out.push_back(results[s.execute]);
    } else if (s.same_as >= 0) {
      ++retries_answered_;
      out.push_back(out[s.same_as]);
    } else {
      ++retries_answered_;
      out.push_back(s.fixed);
    }
  }
  return out;
}

}  // namespace blizzard::node
