// The typed keyspace on the arena. Layout: structures/FORMAT.md
// ("Keyspace"); containers: hash_map.h, deque.h, btree.h.
#include "structures/kv_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "absl/base/internal/raw_logging.h"
#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "structures/arena.h"
#include "structures/btree.h"
#include "structures/deque.h"
#include "structures/hash_map.h"
#include "structures/keyspace_format.h"
#include "structures/pmem_arena.h"
#include "xxhash.h"

namespace blizzard::structures {
namespace {

using keyspace_format::ContainerValue;
using keyspace_format::Root;

// Redis's replies, verbatim (t_string.c, object.c).
constexpr char kNotIntegerError[] = "ERR value is not an integer or out of range";
constexpr char kOverflowError[] = "ERR increment or decrement would overflow";
constexpr char kTooLongError[] = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

// Redis's string2ll: optional '-', no '+', no spaces, no leading zeros,
// fewer than 21 bytes, within int64.
bool ParseInt64(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() >= 21) return false;
  if (s == "0") {
    *out = 0;
    return true;
  }
  size_t i = 0;
  const bool negative = s[0] == '-';
  if (negative && ++i == s.size()) return false;
  if (s[i] < '1' || s[i] > '9') return false;
  uint64_t v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
    v = v * 10 + digit;
  }
  constexpr uint64_t kMaxPositive = std::numeric_limits<int64_t>::max();
  if (v > kMaxPositive + (negative ? 1 : 0)) return false;
  *out = negative ? static_cast<int64_t>(~v + 1) : static_cast<int64_t>(v);
  return true;
}

OpResult Ok() { return OpResult{}; }
OpResult Integer(int64_t n) {
  OpResult r;
  r.kind = OpResult::Kind::kInteger;
  r.integer = n;
  return r;
}
OpResult Error(const char* text) {
  OpResult r;
  r.kind = OpResult::Kind::kError;
  r.text = text;
  return r;
}
OpResult Bulk(std::string s) {
  OpResult r;
  r.kind = OpResult::Kind::kBulk;
  r.text = std::move(s);
  return r;
}
OpResult Kind(OpResult::Kind k) {
  OpResult r;
  r.kind = k;
  return r;
}

absl::Status Damaged(const std::string& why) {
  return absl::DataLossError(absl::StrCat("keyspace: ", why));
}

// Redis index rules: negative counts from the end; [start, stop] clamped.
// false when the range is empty.
bool ClampRange(int64_t start, int64_t stop, uint64_t len, uint64_t* from, uint64_t* to) {
  const int64_t n = static_cast<int64_t>(len);
  if (start < 0) start += n;
  if (stop < 0) stop += n;
  if (start < 0) start = 0;
  if (start > stop || start >= n) return false;
  if (stop >= n) stop = n - 1;
  *from = static_cast<uint64_t>(start);
  *to = static_cast<uint64_t>(stop);
  return true;
}

}  // namespace

const char* TypeName(ValueType type) {
  switch (type) {
    case ValueType::kString:
      return "string";
    case ValueType::kList:
      return "list";
    case ValueType::kSet:
      return "set";
    case ValueType::kZSet:
      return "zset";
    case ValueType::kNone:
      break;
  }
  return "none";
}

class KvStore::Impl {
 public:
  Impl(std::unique_ptr<ArenaMemory> owned, ArenaMemory* memory, std::unique_ptr<Arena> arena,
       PoolIdentity identity)
      : owned_(std::move(owned)), memory_(memory), arena_(std::move(arena)), id_(identity) {}

  absl::Status Init();
  absl::StatusOr<std::vector<OpResult>> ApplyBatch(uint64_t index, absl::Span<const Op> ops,
                                                   const KvStore::Epilogue* epilogue,
                                                   WriteSet* ws, bool* epilogue_applied);
  absl::Status ApplyWriteSet(const WriteSet& ws, WriteSet* applied);
  absl::Status UndoWriteSet(const WriteSet& ws);
  absl::StatusOr<std::vector<OpResult>> ExecuteOnTop(
      uint64_t index, absl::Span<const KvStore::UnappliedEntry> unapplied,
      const KvStore::Prologue& prologue, const KvStore::Epilogue* epilogue, WriteSet* ws,
      bool* epilogue_applied);
  absl::Status ApplyEntryWriteSet(uint64_t index, const WriteSet& ws, uint64_t ops);
  absl::Status Verify(TableShape* shape) const;
  StoreInfo Info() const;

  Root root() const { return arena_->Load<Root>(arena_format::kRootOffset); }
  Arena& arena() const { return *arena_; }
  HashMap Keys() const { return HashMap(*arena_, root().keys); }
  // The entry of `key` and its type (kNone: absent).
  std::pair<uint64_t, ValueType> Lookup(std::string_view key) const;
  ContainerValue Container(uint64_t entry) const;
  StoreStats stats_;
  ArenaStats stats_base_;  // Stats count from the end of Open.

 private:
  static absl::Status ValidateOps(absl::Span<const Op> ops);
  // Inside a transaction: the ops' effects, then the epilogue's (optional,
  // as in KvStore::ApplyBatch; InvalidArgument if one of its ops is
  // invalid: the caller aborts), and the root's new applied index and
  // state hash. An op that runs out of arena is undone alone (ApplyOrOom);
  // stops at the first other arena failure. Counts the OOM answers in
  // tx_ops_out_of_memory_.
  absl::StatusOr<std::vector<OpResult>> ExecuteOps(uint64_t index, absl::Span<const Op> ops,
                                                   const KvStore::Epilogue* epilogue = nullptr,
                                                   bool* epilogue_applied = nullptr);
  // The epilogue's ops for `results` (stops at an arena failure).
  absl::Status RunEpilogue(uint64_t index, const KvStore::Epilogue& epilogue,
                           absl::Span<const OpResult> results);
  // ApplyOp inside a savepoint: if the op cannot allocate, its writes and
  // its change of the state hash are undone and it answers OOM.
  OpResult ApplyOrOom(const Op& op);
  OpResult ApplyOp(const Op& op);
  // Key terms of the state hash.
  uint64_t TermOfEntry(uint64_t entry) const;
  uint64_t ListDigest(uint64_t deque, uint64_t raw) const;
  void RemoveKey(std::string_view key, uint64_t entry);
  void DestroyContainer(uint64_t entry);
  void SetString(std::string_view key, std::string_view value);
  // Creates an empty container value for `key` when absent; WRONGTYPE
  // (false) when the key holds another type. `*entry` is the key's entry.
  bool OpenContainer(std::string_view key, ValueType type, bool create, uint64_t* entry,
                     ContainerValue* cv, bool* wrong_type);
  void SaveContainer(std::string_view key, uint64_t old_term, const ContainerValue& cv);
  // The container an op works on, and its key's term before the op.
  struct Target {
    uint64_t entry = 0;
    ContainerValue cv{};
    uint64_t old_term = 0;
  };
  // nullopt: proceed on *t. Otherwise the op's reply: WRONGTYPE, or
  // `absent` when the key does not exist and `create` is false.
  std::optional<OpResult> OpenTarget(std::string_view key, ValueType type, bool create,
                                     OpResult absent, Target* t);
  OpResult Push(const Op& op, bool front);
  OpResult Pop(const Op& op, bool front);
  OpResult SetAddRem(const Op& op, bool add);
  OpResult ZAdd(const Op& op);
  OpResult ZRem(const Op& op);
  OpResult ZPop(const Op& op, bool max);
  OpResult IncrBy(std::string_view key, int64_t delta);
  OpResult Append(std::string_view key, std::string_view suffix);
  absl::Status CheckContainer(uint64_t entry, const std::function<absl::Status(uint64_t)>& own,
                              TableShape* shape) const;

  std::unique_ptr<ArenaMemory> owned_;
  ArenaMemory* memory_;
  std::unique_ptr<Arena> arena_;
  PoolIdentity id_;
  // The state hash of the open transaction (written with the root).
  uint64_t state_hash_ = 0;
  // Ops of the open transaction answered OOM; epilogue dropped.
  uint64_t tx_ops_out_of_memory_ = 0;
  bool tx_epilogue_dropped_ = false;
};

// --- Hashes -------------------------------------------------------------------

uint64_t KvStore::Impl::ListDigest(uint64_t deque, uint64_t raw) const {
  // raw = sum h(e_i) g^seq_i; normalized to the list's own positions.
  const int64_t first = Deque(*arena_, deque).first_seq();
  return keyspace_format::MulMod(raw, keyspace_format::PowG(-first));
}

uint64_t KvStore::Impl::TermOfEntry(uint64_t entry) const {
  const HashMap keys = Keys();
  const std::string_view key = keys.Key(entry);
  const std::string_view value = keys.Value(entry);
  const auto type = static_cast<ValueType>(value[0]);
  uint64_t digest = 0;
  if (type == ValueType::kString) {
    digest = XXH3_64bits_withSeed(value.data() + 1, value.size() - 1, keyspace_format::kValueSeed);
  } else {
    const ContainerValue cv = Container(entry);
    digest = type == ValueType::kList ? ListDigest(cv.container, cv.digest) : cv.digest;
  }
  return keyspace_format::KeyTerm(key, type, digest);
}

// --- Lookup -------------------------------------------------------------------

std::pair<uint64_t, ValueType> KvStore::Impl::Lookup(std::string_view key) const {
  const HashMap keys = Keys();
  const uint64_t e = keys.Find(key);
  if (e == 0) return {0, ValueType::kNone};
  return {e, static_cast<ValueType>(keys.Value(e)[0])};
}

ContainerValue KvStore::Impl::Container(uint64_t entry) const {
  ContainerValue cv;
  std::memcpy(&cv, Keys().Value(entry).data(), sizeof(cv));
  return cv;
}

// --- Open ---------------------------------------------------------------------

absl::Status KvStore::Impl::Init() {
  const Root r = root();
  if (r.magic == keyspace_format::kMagic) {
    if (r.keys == 0 || !arena_->Contains(r.keys, sizeof(hash_map_format::Header))) {
      return Damaged("root names no key map");
    }
    return absl::OkStatus();
  }
  if (r.magic != 0 || r.applied_index != 0 || r.keys != 0) {
    return absl::FailedPreconditionError("keyspace: bad root magic (not a keyspace arena)");
  }
  // A freshly formatted arena: create the key map.
  if (auto s = arena_->Begin(); !s.ok()) return s;
  const uint64_t keys = HashMap::Create(*arena_);
  arena_->Put(arena_format::kRootOffset, Root{keyspace_format::kMagic, 0, 0, keys});
  absl::Status s = arena_->Commit();
  stats_base_ = arena_->stats();
  return s;
}

// --- Apply --------------------------------------------------------------------

absl::StatusOr<std::vector<OpResult>> KvStore::Impl::ApplyBatch(uint64_t index,
                                                                absl::Span<const Op> ops,
                                                                const KvStore::Epilogue* epilogue,
                                                                WriteSet* ws,
                                                                bool* epilogue_applied) {
  const Root r = root();
  if (index <= r.applied_index) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "entry %d is not after the applied index %d", index, r.applied_index));
  }
  if (auto s = ValidateOps(ops); !s.ok()) return s;
  if (auto s = arena_->Begin(); !s.ok()) return s;
  absl::StatusOr<std::vector<OpResult>> results =
      ExecuteOps(index, ops, epilogue, epilogue_applied);
  if (!results.ok()) {
    arena_->Abort();
    return results.status();
  }
  if (auto s = arena_->Commit(ws); !s.ok()) return s;
  stats_.ops_applied += ops.size();
  stats_.ops_out_of_memory += tx_ops_out_of_memory_;
  stats_.epilogues_dropped += tx_epilogue_dropped_ ? 1 : 0;
  return results;
}

absl::Status KvStore::Impl::ValidateOps(absl::Span<const Op> ops) {
  for (size_t i = 0; i < ops.size(); ++i) {
    if (auto s = ValidateOp(ops[i]); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("op ", i, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<OpResult>> KvStore::Impl::ExecuteOps(
    uint64_t index, absl::Span<const Op> ops, const KvStore::Epilogue* epilogue,
    bool* epilogue_applied) {
  const Root r = root();
  state_hash_ = r.state_hash;
  tx_ops_out_of_memory_ = 0;
  tx_epilogue_dropped_ = false;
  if (epilogue_applied != nullptr) *epilogue_applied = true;
  const Arena::Savepoint start = arena_->Mark();
  std::vector<OpResult> results;
  results.reserve(ops.size());
  for (const Op& op : ops) {
    results.push_back(ApplyOrOom(op));
    if (!arena_->ok()) break;
  }
  if (arena_->ok() && epilogue != nullptr && *epilogue) {
    if (auto s = RunEpilogue(index, *epilogue, results); !s.ok()) return s;
    // What the epilogue records (client sessions) must commit with the
    // ops it describes, so if it does not fit, the ops go: all are undone
    // and answer OOM, and the epilogue records that instead. If even that
    // does not fit, only the index commits.
    for (int attempt = 0; attempt < 2 && arena_->out_of_memory(); ++attempt) {
      arena_->RollbackTo(start);
      state_hash_ = r.state_hash;
      for (OpResult& res : results) res = Error(kOutOfMemoryError);
      tx_ops_out_of_memory_ = results.size();
      if (attempt == 0) {
        if (auto s = RunEpilogue(index, *epilogue, results); !s.ok()) return s;
      } else {
        tx_epilogue_dropped_ = true;
        if (epilogue_applied != nullptr) *epilogue_applied = false;
      }
    }
  }
  if (!arena_->ok()) return results;  // A backend error: Commit reports it.
  Root now = r;
  now.applied_index = index;
  now.state_hash = state_hash_;
  arena_->PutChanged(arena_format::kRootOffset, r, now);
  return results;
}

absl::Status KvStore::Impl::RunEpilogue(uint64_t index, const KvStore::Epilogue& epilogue,
                                        absl::Span<const OpResult> results) {
  const std::vector<Op> extra = epilogue(results);
  for (size_t i = 0; i < extra.size() && arena_->ok(); ++i) {
    if (auto s = ValidateOp(extra[i]); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("apply index %d: epilogue op %d: %s", index, i, s.message()));
    }
    (void)ApplyOp(extra[i]);
  }
  return absl::OkStatus();
}

OpResult KvStore::Impl::ApplyOrOom(const Op& op) {
  const Arena::Savepoint before = arena_->Mark();
  const uint64_t hash = state_hash_;
  OpResult result = ApplyOp(op);
  if (!arena_->out_of_memory()) return result;
  arena_->RollbackTo(before);
  state_hash_ = hash;
  tx_ops_out_of_memory_++;
  return Error(kOutOfMemoryError);
}

OpResult KvStore::Impl::ApplyOp(const Op& op) {
  switch (op.code) {
    case OpCode::kSet:
      SetString(op.args[0], op.args[1]);
      return Ok();
    case OpCode::kMSet:
      for (size_t i = 0; i < op.args.size(); i += 2) SetString(op.args[i], op.args[i + 1]);
      return Ok();
    case OpCode::kDel: {
      int64_t removed = 0;
      for (const std::string& key : op.args) {
        const auto [e, type] = Lookup(key);
        if (type == ValueType::kNone) continue;
        RemoveKey(key, e);
        removed++;
      }
      return Integer(removed);
    }
    case OpCode::kIncrBy:
      return IncrBy(op.args[0], op.delta);
    case OpCode::kAppend:
      return Append(op.args[0], op.args[1]);
    case OpCode::kLPush:
      return Push(op, true);
    case OpCode::kRPush:
      return Push(op, false);
    case OpCode::kLPop:
      return Pop(op, true);
    case OpCode::kRPop:
      return Pop(op, false);
    case OpCode::kSAdd:
      return SetAddRem(op, true);
    case OpCode::kSRem:
      return SetAddRem(op, false);
    case OpCode::kZAdd:
      return ZAdd(op);
    case OpCode::kZRem:
      return ZRem(op);
    case OpCode::kZPopMin:
      return ZPop(op, false);
    case OpCode::kZPopMax:
      return ZPop(op, true);
  }
  ABSL_RAW_CHECK(false, "ApplyOp: op was validated");
  return Ok();
}

void KvStore::Impl::DestroyContainer(uint64_t entry) {
  const auto type = static_cast<ValueType>(Keys().Value(entry)[0]);
  if (type == ValueType::kString) return;
  const ContainerValue cv = Container(entry);
  switch (type) {
    case ValueType::kList:
      Deque(*arena_, cv.container).Destroy();
      break;
    case ValueType::kSet:
      HashMap(*arena_, cv.container).Destroy();
      break;
    case ValueType::kZSet: {
      const auto z = arena_->Load<keyspace_format::ZSet>(cv.container);
      HashMap(*arena_, z.members).Destroy();
      BTree(*arena_, z.tree).Destroy();
      arena_->Free(cv.container);
      break;
    }
    default:
      break;
  }
}

void KvStore::Impl::RemoveKey(std::string_view key, uint64_t entry) {
  state_hash_ -= TermOfEntry(entry);
  DestroyContainer(entry);
  HashMap keys = Keys();
  keys.Erase(key);
}

void KvStore::Impl::SetString(std::string_view key, std::string_view value) {
  const char type = static_cast<char>(ValueType::kString);
  HashMap keys = Keys();
  // One lookup: the old value (any type) goes just before it is replaced.
  const uint64_t n = keys.Put(key, std::string_view(&type, 1), value, [&](uint64_t old) {
    state_hash_ -= TermOfEntry(old);
    DestroyContainer(old);
  });
  if (n != 0) state_hash_ += TermOfEntry(n);
}

OpResult KvStore::Impl::IncrBy(std::string_view key, int64_t delta) {
  const auto [e, type] = Lookup(key);
  if (type != ValueType::kNone && type != ValueType::kString) return Error(kWrongTypeError);
  int64_t value = 0;
  if (e != 0 && !ParseInt64(Keys().Value(e).substr(1), &value)) return Error(kNotIntegerError);
  if (__builtin_add_overflow(value, delta, &value)) return Error(kOverflowError);
  SetString(key, absl::StrCat(value));
  return Integer(value);
}

OpResult KvStore::Impl::Append(std::string_view key, std::string_view suffix) {
  const auto [e, type] = Lookup(key);
  if (type == ValueType::kNone) {
    SetString(key, suffix);
    return Integer(static_cast<int64_t>(suffix.size()));
  }
  if (type != ValueType::kString) return Error(kWrongTypeError);
  const uint64_t old_bytes = Keys().Value(e).size() - 1;
  const uint64_t new_bytes = old_bytes + suffix.size();
  if (new_bytes > kValueBytesMax) return Error(kTooLongError);
  if (suffix.empty()) return Integer(static_cast<int64_t>(old_bytes));
  state_hash_ -= TermOfEntry(e);
  HashMap keys = Keys();
  const uint64_t n = keys.Append(key, suffix);
  if (n != 0) state_hash_ += TermOfEntry(n);
  return Integer(static_cast<int64_t>(new_bytes));
}

bool KvStore::Impl::OpenContainer(std::string_view key, ValueType type, bool create,
                                  uint64_t* entry, ContainerValue* cv, bool* wrong_type) {
  const auto [e, t] = Lookup(key);
  *wrong_type = t != ValueType::kNone && t != type;
  if (*wrong_type) return false;
  if (e != 0) {
    *entry = e;
    *cv = Container(e);
    return true;
  }
  if (!create) return false;
  ContainerValue fresh{};
  fresh.type = static_cast<uint8_t>(type);
  switch (type) {
    case ValueType::kList:
      fresh.container = Deque::Create(*arena_);
      break;
    case ValueType::kSet:
      fresh.container = HashMap::Create(*arena_);
      break;
    case ValueType::kZSet: {
      fresh.container = arena_->Alloc(sizeof(keyspace_format::ZSet));
      const uint64_t members = HashMap::Create(*arena_);
      const uint64_t tree = BTree::Create(*arena_);
      if (fresh.container != 0) {
        arena_->Put(fresh.container, keyspace_format::ZSet{members, tree});
      }
      break;
    }
    default:
      ABSL_RAW_CHECK(false, "OpenContainer of a non-container type");
  }
  if (!arena_->ok()) return false;
  HashMap keys = Keys();
  *entry = keys.Put(key, std::string_view(reinterpret_cast<const char*>(&fresh), sizeof(fresh)));
  // The arena may have run out inside Put (no entry then): the op stops
  // here and is undone by its caller (ApplyOrOom).
  if (!arena_->ok()) return false;
  *cv = fresh;
  // An empty container's term joins the hash in SaveContainer (the caller
  // adds elements first; an empty container never persists).
  state_hash_ += TermOfEntry(*entry);
  return arena_->ok();
}

std::optional<OpResult> KvStore::Impl::OpenTarget(std::string_view key, ValueType type,
                                                  bool create, OpResult absent, Target* t) {
  bool wrong = false;
  if (!OpenContainer(key, type, create, &t->entry, &t->cv, &wrong)) {
    return wrong ? Error(kWrongTypeError) : std::move(absent);
  }
  t->old_term = TermOfEntry(t->entry);
  return std::nullopt;
}

// Writes the container's digest into its key entry and moves the key's
// term in the state hash; removes the key if the container emptied.
void KvStore::Impl::SaveContainer(std::string_view key, uint64_t old_term,
                                  const ContainerValue& cv) {
  const uint64_t e = Keys().Find(key);
  state_hash_ -= old_term;
  uint64_t size = 0;
  switch (static_cast<ValueType>(cv.type)) {
    case ValueType::kList:
      size = Deque(*arena_, cv.container).size();
      break;
    case ValueType::kSet:
      size = HashMap(*arena_, cv.container).size();
      break;
    default:
      size = BTree(*arena_, arena_->Load<keyspace_format::ZSet>(cv.container).tree).size();
  }
  if (size == 0) {  // Redis deletes empty containers.
    state_hash_ += TermOfEntry(e);  // RemoveKey subtracts it again.
    RemoveKey(key, e);
    return;
  }
  const uint64_t digest_at = e + sizeof(hash_map_format::Entry) + key.size() +
                             offsetof(ContainerValue, digest);
  if (arena_->Load<uint64_t>(digest_at) != cv.digest) arena_->Put<uint64_t>(digest_at, cv.digest);
  state_hash_ += TermOfEntry(e);
}

OpResult KvStore::Impl::Push(const Op& op, bool front) {
  Target t;
  if (auto r = OpenTarget(op.args[0], ValueType::kList, true, Ok(), &t)) return *r;
  ContainerValue& cv = t.cv;
  Deque d(*arena_, cv.container);
  for (size_t i = 1; i < op.args.size() && arena_->ok(); ++i) {
    if (!(front ? d.PushFront(op.args[i]) : d.PushBack(op.args[i]))) break;
    const int64_t seq = front ? d.first_seq() : d.first_seq() + static_cast<int64_t>(d.size()) - 1;
    cv.digest = keyspace_format::AddMod(
        cv.digest, keyspace_format::MulMod(keyspace_format::ElementHash(op.args[i]),
                                           keyspace_format::PowG(seq)));
  }
  const int64_t len = static_cast<int64_t>(d.size());
  SaveContainer(op.args[0], t.old_term, cv);
  return Integer(len);
}

OpResult KvStore::Impl::Pop(const Op& op, bool front) {
  Target t;
  const OpResult absent =
      Kind(op.delta == kNoCount ? OpResult::Kind::kNil : OpResult::Kind::kNilArray);
  if (auto r = OpenTarget(op.args[0], ValueType::kList, false, absent, &t)) return *r;
  ContainerValue& cv = t.cv;
  Deque d(*arena_, cv.container);
  const uint64_t want = op.delta == kNoCount ? 1 : static_cast<uint64_t>(op.delta);
  OpResult r = Kind(OpResult::Kind::kArray);
  for (uint64_t i = 0; i < want && d.size() > 0 && arena_->ok(); ++i) {
    const int64_t seq = front ? d.first_seq() : d.first_seq() + static_cast<int64_t>(d.size()) - 1;
    std::string v = front ? d.PopFront() : d.PopBack();
    cv.digest = keyspace_format::SubMod(
        cv.digest,
        keyspace_format::MulMod(keyspace_format::ElementHash(v), keyspace_format::PowG(seq)));
    r.items.push_back(std::move(v));
  }
  SaveContainer(op.args[0], t.old_term, cv);
  if (op.delta == kNoCount) return Bulk(std::move(r.items.front()));
  return r;
}

OpResult KvStore::Impl::SetAddRem(const Op& op, bool add) {
  Target t;
  if (auto r = OpenTarget(op.args[0], ValueType::kSet, add, Integer(0), &t)) return *r;
  ContainerValue& cv = t.cv;
  HashMap set(*arena_, cv.container);
  int64_t changed = 0;
  for (size_t i = 1; i < op.args.size() && arena_->ok(); ++i) {
    const std::string& m = op.args[i];
    if (add) {
      if (set.Find(m) != 0) continue;
      set.Put(m, {});
    } else if (!set.Erase(m)) {
      continue;
    }
    changed++;
    const uint64_t h = keyspace_format::MemberHash(m);
    cv.digest = add ? cv.digest + h : cv.digest - h;
  }
  SaveContainer(op.args[0], t.old_term, cv);
  return Integer(changed);
}

OpResult KvStore::Impl::ZAdd(const Op& op) {
  Target t;
  if (auto r = OpenTarget(op.args[0], ValueType::kZSet, true, Ok(), &t)) return *r;
  ContainerValue& cv = t.cv;
  const auto z = arena_->Load<keyspace_format::ZSet>(cv.container);
  HashMap members(*arena_, z.members);
  BTree tree(*arena_, z.tree);
  int64_t added = 0;
  for (size_t i = 0; i < op.scores.size() && arena_->ok(); ++i) {
    const std::string& m = op.args[i + 1];
    const double score = op.scores[i];
    const uint64_t me = members.Find(m);
    if (me != 0) {
      double old = 0;
      std::memcpy(&old, members.Value(me).data(), 8);
      if (old == score) continue;  // Redis: no change (also for -0 vs 0).
      tree.Erase({old, m});
      cv.digest -= keyspace_format::ScoredHash(m, old);
    } else {
      added++;
    }
    members.Put(m, std::string_view(reinterpret_cast<const char*>(&score), 8));
    tree.Insert({score, m});
    cv.digest += keyspace_format::ScoredHash(m, score);
  }
  SaveContainer(op.args[0], t.old_term, cv);
  return Integer(added);
}

OpResult KvStore::Impl::ZRem(const Op& op) {
  Target t;
  if (auto r = OpenTarget(op.args[0], ValueType::kZSet, false, Integer(0), &t)) return *r;
  ContainerValue& cv = t.cv;
  const auto z = arena_->Load<keyspace_format::ZSet>(cv.container);
  HashMap members(*arena_, z.members);
  BTree tree(*arena_, z.tree);
  int64_t removed = 0;
  for (size_t i = 1; i < op.args.size() && arena_->ok(); ++i) {
    const std::string& m = op.args[i];
    const uint64_t me = members.Find(m);
    if (me == 0) continue;
    double score = 0;
    std::memcpy(&score, members.Value(me).data(), 8);
    tree.Erase({score, m});
    members.Erase(m);
    cv.digest -= keyspace_format::ScoredHash(m, score);
    removed++;
  }
  SaveContainer(op.args[0], t.old_term, cv);
  return Integer(removed);
}

OpResult KvStore::Impl::ZPop(const Op& op, bool max) {
  Target t;
  const OpResult absent = Kind(OpResult::Kind::kArray);
  if (auto r = OpenTarget(op.args[0], ValueType::kZSet, false, absent, &t)) return *r;
  ContainerValue& cv = t.cv;
  const auto z = arena_->Load<keyspace_format::ZSet>(cv.container);
  HashMap members(*arena_, z.members);
  BTree tree(*arena_, z.tree);
  const uint64_t want = op.delta == kNoCount ? 1 : static_cast<uint64_t>(op.delta);
  OpResult r = Kind(OpResult::Kind::kArray);
  for (uint64_t i = 0; i < want && tree.size() > 0 && arena_->ok(); ++i) {
    std::string m;
    double score = 0;
    auto take = [&](ZKey k) {
      m = std::string(k.member);
      score = k.score;
      return false;
    };
    if (max) {
      tree.ScanBack(take);
    } else {
      tree.ScanRank(0, take);
    }
    tree.Erase({score, m});
    members.Erase(m);
    cv.digest -= keyspace_format::ScoredHash(m, score);
    r.items.push_back(m);
    r.items.push_back(FormatScore(score));
  }
  SaveContainer(op.args[0], t.old_term, cv);
  return r;
}

absl::Status KvStore::Impl::ApplyWriteSet(const WriteSet& ws, WriteSet* applied) {
  return arena_->ApplyWriteSet(ws, applied);
}

absl::Status KvStore::Impl::UndoWriteSet(const WriteSet& ws) { return arena_->UndoWriteSet(ws); }

absl::StatusOr<std::vector<OpResult>> KvStore::Impl::ExecuteOnTop(
    uint64_t index, absl::Span<const KvStore::UnappliedEntry> unapplied,
    const KvStore::Prologue& prologue, const KvStore::Epilogue* epilogue, WriteSet* ws,
    bool* epilogue_applied) {
  ABSL_RAW_CHECK(ws != nullptr, "ExecuteOnTop needs a write set");
  const uint64_t applied = root().applied_index;
  for (size_t i = 0; i < unapplied.size(); ++i) {
    if (unapplied[i].index != applied + 1 + i) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "unapplied entry %d of %d has index %d, expected %d (applied index %d)", i,
          unapplied.size(), unapplied[i].index, applied + 1 + i, applied));
    }
  }
  if (index != applied + 1 + unapplied.size()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "entry %d does not follow the applied index %d and %d unapplied entries", index,
        applied, unapplied.size()));
  }
  if (auto s = arena_->Begin(); !s.ok()) return s;
  // Always aborted: the pool never holds what is not committed.
  absl::Cleanup abort = [this] { arena_->Abort(); };
  for (const KvStore::UnappliedEntry& e : unapplied) {
    const Root before = root();
    if (e.write_set != nullptr) {
      if (auto s = arena_->WritePostImages(*e.write_set); !s.ok()) return s;
    } else {
      // What ApplyBatch(e.index, {}) writes: the applied index only.
      Root now = before;
      now.applied_index = e.index;
      arena_->PutChanged(arena_format::kRootOffset, before, now);
    }
    if (!arena_->ok()) return arena_->status();
    if (root().applied_index != e.index) {
      return absl::InternalError(absl::StrFormat(
          "unapplied write set of entry %d sets the applied index to %d", e.index,
          root().applied_index));
    }
  }
  // The prologue reads the state on top of the unapplied entries.
  absl::StatusOr<absl::Span<const Op>> ops = prologue();
  if (!ops.ok()) return ops.status();
  if (auto s = ValidateOps(*ops); !s.ok()) return s;
  arena_->ResetRecording();
  absl::StatusOr<std::vector<OpResult>> results =
      ExecuteOps(index, *ops, epilogue, epilogue_applied);
  if (!results.ok()) return results.status();
  if (auto s = arena_->RecordedWriteSet(ws); !s.ok()) return s;
  stats_.ops_out_of_memory += tx_ops_out_of_memory_;
  stats_.epilogues_dropped += tx_epilogue_dropped_ ? 1 : 0;
  return results;
}

absl::Status KvStore::Impl::ApplyEntryWriteSet(uint64_t index, const WriteSet& ws,
                                               uint64_t ops) {
  const uint64_t applied = root().applied_index;
  if (index <= applied) {
    return absl::FailedPreconditionError(
        absl::StrFormat("entry %d is not after the applied index %d", index, applied));
  }
  if (auto s = arena_->Begin(); !s.ok()) return s;
  if (auto s = arena_->WritePostImages(ws); !s.ok()) {
    arena_->Abort();
    return absl::DataLossError(
        absl::StrCat("write set of entry ", index, " does not apply: ", s.message()));
  }
  // O(1) sanity of what the entry leaves: the keyspace root, its applied
  // index and its key map's place. (Arbitrary bytes elsewhere cannot be
  // told from legitimate ones without the full Verify(): the replica
  // trusts an authenticated leader's content, as in logical mode.)
  const Root r = root();
  const arena_format::Header h = arena_->header();
  if (r.magic != keyspace_format::kMagic || r.applied_index != index || r.keys == 0 ||
      !arena_->Contains(r.keys, sizeof(hash_map_format::Header)) ||
      h.magic != arena_format::kMagic || h.arena_bytes != arena_->size() ||
      h.bump < h.heap_offset || h.bump > h.arena_bytes) {
    arena_->Abort();
    return absl::DataLossError(absl::StrFormat(
        "write set of entry %d would leave applied index %d (magic %x, bump %d): refused",
        index, r.applied_index, r.magic, h.bump));
  }
  if (auto s = arena_->Commit(); !s.ok()) return s;
  stats_.ops_applied += ops;
  return absl::OkStatus();
}

// --- Verify -------------------------------------------------------------------

absl::Status KvStore::Impl::CheckContainer(uint64_t entry,
                                           const std::function<absl::Status(uint64_t)>& own,
                                           TableShape* shape) const {
  const HashMap keys = Keys();
  const std::string_view value = keys.Value(entry);
  const auto type = static_cast<ValueType>(value[0]);
  if (type == ValueType::kString) {
    shape->strings++;
    return absl::OkStatus();
  }
  if (value.size() != sizeof(ContainerValue)) return Damaged("container value of a bad size");
  const ContainerValue cv = Container(entry);
  for (uint8_t b : cv.pad) {
    if (b != 0) return Damaged("container value padding is not zero");
  }
  const uint64_t header_bytes = type == ValueType::kList  ? sizeof(deque_format::Header)
                                : type == ValueType::kSet ? sizeof(hash_map_format::Header)
                                                          : sizeof(keyspace_format::ZSet);
  if (arena_->BlockUsable(cv.container) < header_bytes) {
    return Damaged("container is not a block that holds its header");
  }
  uint64_t digest = 0;
  switch (type) {
    case ValueType::kList: {
      shape->lists++;
      Deque d(*arena_, cv.container);
      if (auto s = d.Check(own); !s.ok()) return s;
      if (d.size() == 0) return Damaged("empty list");
      int64_t seq = d.first_seq();
      d.Range(0, d.size() - 1, [&](std::string_view v) {
        digest = keyspace_format::AddMod(
            digest, keyspace_format::MulMod(keyspace_format::ElementHash(v),
                                            keyspace_format::PowG(seq++)));
      });
      break;
    }
    case ValueType::kSet: {
      shape->sets++;
      HashMap set(*arena_, cv.container);
      if (auto s = set.Check(own); !s.ok()) return s;
      if (set.size() == 0) return Damaged("empty set");
      bool values_empty = true;
      set.ForEach([&](uint64_t m) {
        digest += keyspace_format::MemberHash(set.Key(m));
        values_empty &= set.Value(m).empty();
      });
      if (!values_empty) return Damaged("set member with a value");
      break;
    }
    case ValueType::kZSet: {
      shape->zsets++;
      if (auto s = own(cv.container); !s.ok()) return s;
      const auto z = arena_->Load<keyspace_format::ZSet>(cv.container);
      if (arena_->BlockUsable(z.members) < sizeof(hash_map_format::Header) ||
          arena_->BlockUsable(z.tree) < sizeof(btree_format::Header)) {
        return Damaged("sorted set parts are not blocks that hold their headers");
      }
      HashMap members(*arena_, z.members);
      BTree tree(*arena_, z.tree);
      if (auto s = members.Check(own); !s.ok()) return s;
      if (auto s = tree.Check(own); !s.ok()) return s;
      if (tree.size() == 0 || tree.size() != members.size()) {
        return Damaged("sorted set: empty, or tree and member map disagree on the count");
      }
      absl::Status st;
      tree.ScanRank(0, [&](ZKey k) {
        const uint64_t me = members.Find(k.member);
        double score = 0;
        if (me == 0 || members.Value(me).size() != 8) {
          st = Damaged("sorted set: tree member missing from the member map");
          return false;
        }
        std::memcpy(&score, members.Value(me).data(), 8);
        if (score != k.score || std::signbit(score) != std::signbit(k.score)) {
          st = Damaged("sorted set: scores of the tree and the member map differ");
          return false;
        }
        digest += keyspace_format::ScoredHash(k.member, k.score);
        return true;
      });
      if (!st.ok()) return st;
      break;
    }
    default:
      return Damaged(absl::StrFormat("unknown value type %d", static_cast<int>(type)));
  }
  if (digest != cv.digest) return Damaged("container digest does not match its content");
  return absl::OkStatus();
}

absl::Status KvStore::Impl::Verify(TableShape* shape_out) const {
  absl::flat_hash_set<uint64_t> owned;
  auto own = [&](uint64_t b) -> absl::Status {
    if (!owned.insert(b).second) {
      return Damaged(absl::StrFormat("block %d reachable twice (shared or cyclic)", b));
    }
    return absl::OkStatus();
  };
  TableShape shape;
  const Root r = root();
  if (r.magic != keyspace_format::kMagic) return Damaged("bad root magic");
  const HashMap keys = Keys();
  if (auto s = keys.Check(own); !s.ok()) return s;
  uint64_t hash = 0;
  absl::Status st;
  keys.ForEach([&](uint64_t e) {
    if (!st.ok()) return;
    if (keys.Value(e).empty()) {
      st = Damaged("key without a type");
      return;
    }
    st = CheckContainer(e, own, &shape);
    if (st.ok()) hash += TermOfEntry(e);
  });
  if (!st.ok()) return st;
  if (hash != r.state_hash) return Damaged("state hash does not match the content");
  HeapShape heap;
  absl::Status leak;
  if (auto s = arena_->CheckHeap(
          [&](uint64_t b) {
            if (!owned.contains(b) && leak.ok()) {
              leak = Damaged(absl::StrFormat("block %d is used but unreachable (leak)", b));
            }
          },
          &heap);
      !s.ok()) {
    return s;
  }
  if (!leak.ok()) return leak;
  if (heap.blocks_used != owned.size()) return Damaged("reachable blocks that are not in use");
  shape.objects = heap.blocks_used;
  shape.bytes_allocated = heap.bytes_used;
  shape.bytes_free = heap.bytes_free;
  if (shape_out != nullptr) *shape_out = shape;
  return absl::OkStatus();
}

StoreInfo KvStore::Impl::Info() const {
  StoreInfo info;
  info.layout_version = id_.layout_version;
  info.cluster_id = id_.cluster_id;
  info.node_id = id_.node_id;
  info.pool_bytes = id_.pool_bytes;
  info.arena_bytes = arena_->size();
  info.heap_bytes = arena_->header().bump - arena_format::kHeapOffset;
  const HashMap keys = Keys();
  info.bucket_count = keys.buckets();
  info.resizing = keys.resizing();
  return info;
}

// --- KvStore ------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<KvStore>> KvStore::Open(const StoreOptions& options) {
  PoolOptions po;
  po.path = options.path;
  po.pool_bytes = options.pool_bytes;
  po.cluster_id = options.cluster_id;
  po.node_id = options.node_id;
  po.create_if_missing = options.create_if_missing;
  po.check_identity = options.check_identity;
  po.adopt_node_id = options.adopt_node_id;
  absl::StatusOr<std::unique_ptr<PmemArenaPool>> pool = PmemArenaPool::Open(po);
  if (!pool.ok()) return pool.status();
  absl::StatusOr<std::unique_ptr<Arena>> arena = Arena::Attach(pool->get());
  if (!arena.ok()) {
    return absl::Status(arena.status().code(),
                        absl::StrCat("pool ", options.path, ": ", arena.status().message()));
  }
  const PoolIdentity id = (*pool)->identity();
  ArenaMemory* memory = pool->get();
  auto impl = std::make_unique<Impl>(std::move(*pool), memory, std::move(*arena), id);
  if (auto s = impl->Init(); !s.ok()) return s;
  if (options.verify_on_open) {
    if (auto s = impl->Verify(nullptr); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("pool ", options.path, ": ", s.message()));
    }
  }
  return std::unique_ptr<KvStore>(new KvStore(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<KvStore>> KvStore::OpenMemory(ArenaMemory* memory, bool verify) {
  const bool fresh = memory->data()[0] == 0;  // A zeroed memory: format it.
  if (fresh) {
    if (auto s = Arena::Format(memory); !s.ok()) return s;
  }
  absl::StatusOr<std::unique_ptr<Arena>> arena = Arena::Attach(memory);
  if (!arena.ok()) return arena.status();
  auto impl = std::make_unique<Impl>(nullptr, memory, std::move(*arena), PoolIdentity{});
  if (auto s = impl->Init(); !s.ok()) return s;
  if (verify) {
    if (auto s = impl->Verify(nullptr); !s.ok()) return s;
  }
  return std::unique_ptr<KvStore>(new KvStore(std::move(impl)));
}

KvStore::KvStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KvStore::~KvStore() = default;

absl::StatusOr<std::vector<OpResult>> KvStore::ApplyBatch(uint64_t index,
                                                          absl::Span<const Op> ops,
                                                          WriteSet* write_set) {
  return impl_->ApplyBatch(index, ops, nullptr, write_set, nullptr);
}
absl::StatusOr<std::vector<OpResult>> KvStore::ApplyBatch(uint64_t index,
                                                          absl::Span<const Op> ops,
                                                          const Epilogue& epilogue,
                                                          WriteSet* write_set,
                                                          bool* epilogue_applied) {
  return impl_->ApplyBatch(index, ops, &epilogue, write_set, epilogue_applied);
}
absl::Status KvStore::ApplyWriteSet(const WriteSet& ws, WriteSet* applied) {
  return impl_->ApplyWriteSet(ws, applied);
}
absl::Status KvStore::UndoWriteSet(const WriteSet& ws) { return impl_->UndoWriteSet(ws); }
absl::StatusOr<std::vector<OpResult>> KvStore::ExecuteOnTop(
    uint64_t index, absl::Span<const UnappliedEntry> unapplied, absl::Span<const Op> ops,
    WriteSet* ws) {
  return impl_->ExecuteOnTop(
      index, unapplied, [ops]() -> absl::StatusOr<absl::Span<const Op>> { return ops; }, nullptr,
      ws, nullptr);
}
absl::StatusOr<std::vector<OpResult>> KvStore::ExecuteOnTop(
    uint64_t index, absl::Span<const UnappliedEntry> unapplied, const Prologue& prologue,
    const Epilogue& epilogue, WriteSet* ws, bool* epilogue_applied) {
  return impl_->ExecuteOnTop(index, unapplied, prologue, &epilogue, ws, epilogue_applied);
}
absl::Status KvStore::ApplyEntryWriteSet(uint64_t index, const WriteSet& ws, uint64_t ops) {
  return impl_->ApplyEntryWriteSet(index, ws, ops);
}
uint64_t KvStore::ArenaBytes() const { return impl_->arena().size(); }
MemoryUsage KvStore::Memory() const {
  return MemoryUsage{impl_->arena().UsedBytes(), impl_->arena().CapacityBytes()};
}

ValueType KvStore::Type(std::string_view key) const { return impl_->Lookup(key).second; }

std::optional<std::string> KvStore::Get(std::string_view key) const {
  const auto [e, type] = impl_->Lookup(key);
  if (type != ValueType::kString) return std::nullopt;
  return std::string(impl_->Keys().Value(e).substr(1));
}

uint64_t KvStore::Size() const { return impl_->Keys().size(); }
uint64_t KvStore::AppliedIndex() const { return impl_->root().applied_index; }
uint64_t KvStore::StateHash() const { return impl_->root().state_hash; }

uint64_t KvStore::ListLength(std::string_view key) const {
  const auto [e, type] = impl_->Lookup(key);
  if (type != ValueType::kList) return 0;
  return Deque(impl_->arena(), impl_->Container(e).container).size();
}

std::vector<std::string> KvStore::ListRange(std::string_view key, int64_t start,
                                            int64_t stop) const {
  std::vector<std::string> out;
  const auto [e, type] = impl_->Lookup(key);
  if (type != ValueType::kList) return out;
  const Deque d(impl_->arena(), impl_->Container(e).container);
  uint64_t from = 0, to = 0;
  if (!ClampRange(start, stop, d.size(), &from, &to)) return out;
  d.Range(from, to, [&](std::string_view v) { out.emplace_back(v); });
  return out;
}

std::optional<std::string> KvStore::ListIndex(std::string_view key, int64_t index) const {
  const auto [e, type] = impl_->Lookup(key);
  if (type != ValueType::kList) return std::nullopt;
  const Deque d(impl_->arena(), impl_->Container(e).container);
  const int64_t n = static_cast<int64_t>(d.size());
  if (index < 0) index += n;
  if (index < 0 || index >= n) return std::nullopt;
  return std::string(d.At(static_cast<uint64_t>(index)));
}

std::vector<std::string> KvStore::SetMembers(std::string_view key) const {
  std::vector<std::string> out;
  const auto [e, type] = impl_->Lookup(key);
  if (type != ValueType::kSet) return out;
  const HashMap set(impl_->arena(), impl_->Container(e).container);
  set.ForEach([&](uint64_t m) { out.emplace_back(set.Key(m)); });
  return out;
}

bool KvStore::SetIsMember(std::string_view key, std::string_view member) const {
  const auto [e, type] = impl_->Lookup(key);
  if (type != ValueType::kSet) return false;
  return HashMap(impl_->arena(), impl_->Container(e).container).Find(member) != 0;
}

uint64_t KvStore::SetCard(std::string_view key) const {
  const auto [e, type] = impl_->Lookup(key);
  if (type != ValueType::kSet) return 0;
  return HashMap(impl_->arena(), impl_->Container(e).container).size();
}

std::optional<double> KvStore::ZScore(std::string_view key, std::string_view member) const {
  const auto [e, type] = impl_->Lookup(key);
  if (type != ValueType::kZSet) return std::nullopt;
  const auto z = impl_->arena().Load<keyspace_format::ZSet>(impl_->Container(e).container);
  const HashMap members(impl_->arena(), z.members);
  const uint64_t me = members.Find(member);
  if (me == 0) return std::nullopt;
  double score = 0;
  std::memcpy(&score, members.Value(me).data(), 8);
  return score;
}

uint64_t KvStore::ZCard(std::string_view key) const {
  const auto [e, type] = impl_->Lookup(key);
  if (type != ValueType::kZSet) return 0;
  const auto z = impl_->arena().Load<keyspace_format::ZSet>(impl_->Container(e).container);
  return BTree(impl_->arena(), z.tree).size();
}

std::vector<std::pair<std::string, double>> KvStore::ZRange(std::string_view key, int64_t start,
                                                            int64_t stop) const {
  std::vector<std::pair<std::string, double>> out;
  const auto [e, type] = impl_->Lookup(key);
  if (type != ValueType::kZSet) return out;
  const auto z = impl_->arena().Load<keyspace_format::ZSet>(impl_->Container(e).container);
  const BTree tree(impl_->arena(), z.tree);
  uint64_t from = 0, to = 0;
  if (!ClampRange(start, stop, tree.size(), &from, &to)) return out;
  tree.ScanRank(from, [&](ZKey k) {
    out.emplace_back(std::string(k.member), k.score);
    return out.size() < to - from + 1;
  });
  return out;
}

std::vector<std::pair<std::string, double>> KvStore::ZRangeByScore(std::string_view key,
                                                                   ScoreBound min, ScoreBound max,
                                                                   uint64_t offset,
                                                                   int64_t limit) const {
  std::vector<std::pair<std::string, double>> out;
  const auto [e, type] = impl_->Lookup(key);
  if (type != ValueType::kZSet || limit == 0) return out;
  const auto z = impl_->arena().Load<keyspace_format::ZSet>(impl_->Container(e).container);
  const BTree tree(impl_->arena(), z.tree);
  uint64_t skipped = 0;
  tree.ScanFrom(min.value, min.exclusive, [&](ZKey k) {
    if (k.score > max.value || (max.exclusive && k.score == max.value)) return false;
    if (skipped < offset) {
      skipped++;
      return true;
    }
    out.emplace_back(std::string(k.member), k.score);
    return limit < 0 || out.size() < static_cast<uint64_t>(limit);
  });
  return out;
}

void KvStore::ForEachKey(
    const std::function<void(std::string_view key, ValueType type)>& fn) const {
  const HashMap keys = impl_->Keys();
  keys.ForEach([&](uint64_t e) { fn(keys.Key(e), static_cast<ValueType>(keys.Value(e)[0])); });
}

void KvStore::ForEach(
    const std::function<void(std::string_view key, std::string_view value)>& fn) const {
  const HashMap keys = impl_->Keys();
  keys.ForEach([&](uint64_t e) {
    const std::string_view v = keys.Value(e);
    if (static_cast<ValueType>(v[0]) == ValueType::kString) fn(keys.Key(e), v.substr(1));
  });
}

StoreStats KvStore::Stats() const {
  StoreStats s = impl_->stats_;
  const ArenaStats a = impl_->arena().stats();
  const ArenaStats& base = impl_->stats_base_;  // Open's own transaction.
  s.transactions = a.transactions - base.transactions;
  s.bytes_written = a.bytes_written - base.bytes_written;
  s.ranges_written = a.ranges_written - base.ranges_written;
  return s;
}

absl::Status KvStore::Verify(TableShape* shape) const { return impl_->Verify(shape); }
StoreInfo KvStore::Info() const { return impl_->Info(); }

}  // namespace blizzard::structures
