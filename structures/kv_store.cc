// The key-value store: a chained hash table in a libpmemobj pool.
// Layout: structures/FORMAT.md ("KV pool"); constants: kv_format.h.
//
// Transactions use libpmemobj's function API with a NULL jmp_buf rather than
// the TX_BEGIN/TX_END macros: the macros setjmp/longjmp on failure, which
// would skip C++ destructors (undefined behaviour). With a NULL jmp_buf and
// the *_NO_ABORT flags every failure is an error code; we abort explicitly.
#include "structures/kv_store.h"

#include <fcntl.h>
#include <libpmemobj.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "structures/kv_format.h"

namespace blizzard::structures {
namespace {

using kv_format::Entry;
using kv_format::Header;
using kv_format::Root;

// Redis's replies, verbatim (t_string.c, object.c).
constexpr char kNotIntegerError[] = "ERR value is not an integer or out of range";
constexpr char kOverflowError[] = "ERR increment or decrement would overflow";
constexpr char kTooLongError[] =
    "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

constexpr uint64_t kPoolBytesMax = 1ull << 40;
// APPEND growth, as Redis's sds: double below 1 MiB, then +1 MiB.
constexpr uint64_t kAppendPreallocBytesMax = 1u << 20;
// A value rewritten in place may leave at most this much unused slack
// beyond twice its size; otherwise the entry moves to a fitting allocation.
constexpr uint64_t kSlackBytesMax = 256;

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

OpResult OkResult() { return OpResult{}; }
OpResult IntegerResult(int64_t n) {
  return OpResult{.kind = OpResult::Kind::kInteger, .integer = n, .text = {}};
}
OpResult ErrorResult(const char* text) {
  return OpResult{.kind = OpResult::Kind::kError, .integer = 0, .text = text};
}

bool IsPowerOfTwo(uint64_t n) { return n != 0 && (n & (n - 1)) == 0; }

char* Data(Entry* e) { return reinterpret_cast<char*>(e + 1); }
std::string_view KeyOf(Entry* e) { return {Data(e), e->key_bytes}; }
std::string_view ValueOf(Entry* e) { return {Data(e) + e->key_bytes, e->value_bytes}; }
size_t EntryBytes(size_t key_bytes, size_t value_bytes) {
  return sizeof(Entry) + key_bytes + value_bytes;
}

uint64_t AppendCapacity(uint64_t value_bytes) {
  const uint64_t grown = value_bytes < kAppendPreallocBytesMax
                             ? 2 * value_bytes
                             : value_bytes + kAppendPreallocBytesMax;
  return std::min<uint64_t>(grown, kValueBytesMax);
}

absl::Status PmemError(int err, const std::string& what) {
  const std::string msg = absl::StrCat(what, ": ", pmemobj_errormsg());
  if (err == ENOMEM) return absl::ResourceExhaustedError(absl::StrCat("pool full: ", msg));
  return absl::ErrnoToStatus(err, msg);
}

// Maps a failed pmemobj_open to the store's error classes.
absl::Status OpenError(const std::string& path, int err) {
  const std::string msg = pmemobj_errormsg();
  const std::string where = absl::StrCat("pool ", path, ": ");
  if (err == ENOENT) return absl::NotFoundError(absl::StrCat(where, msg));
  if (err == EAGAIN || err == EWOULDBLOCK) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, "in use by another process or handle (", msg, ")"));
  }
  if (err == EINVAL) {
    // Another layout or not a pmemobj pool at all: a foreign file. Anything
    // else libpmemobj rejects (header checksum, sizes) is damage.
    if (msg.find("wrong layout") != std::string::npos ||
        msg.find("wrong pool type") != std::string::npos) {
      return absl::FailedPreconditionError(
          absl::StrCat(where, "not a Blizzard KV pool (", msg, ")"));
    }
    return absl::DataLossError(absl::StrCat(where, "damaged pmemobj pool (", msg, ")"));
  }
  return absl::ErrnoToStatus(err, absl::StrCat(where, msg));
}

absl::Status SyncDirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", dir));
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) return absl::ErrnoToStatus(err, absl::StrCat("fsync ", dir));
  return absl::OkStatus();
}

// The writes of one transaction. After the first failure every call is a
// no-op returning false, and err() says why.
class Tx {
 public:
  bool ok() const { return err_ == 0; }
  int err() const { return err_; }
  uint64_t bytes_written() const { return bytes_written_; }

  // Undo-logs [p, p+n) before it is changed; flushed at commit.
  //
  // Everything changed is snapshotted, even bytes that look like unused
  // slack beyond a value: within one batch a value may shrink and then grow
  // again, and the "slack" it grows into held live bytes when the
  // transaction began. (POBJ_XADD_NO_SNAPSHOT there corrupted entries on
  // crash; the crash test caught it.)
  bool Snapshot(const void* p, size_t n) {
    if (!ok()) return false;
    if (n == 0) return true;
    const int rc = pmemobj_tx_xadd_range_direct(p, n, POBJ_XADD_NO_ABORT);
    if (rc != 0) err_ = rc;
    bytes_written_ += n;
    return ok();
  }

  PMEMoid Alloc(size_t n, uint64_t type, bool zero) {
    if (!ok()) return OID_NULL;
    const PMEMoid oid =
        pmemobj_tx_xalloc(n, type, POBJ_XALLOC_NO_ABORT | (zero ? POBJ_XALLOC_ZERO : 0));
    if (OID_IS_NULL(oid)) {
      err_ = errno != 0 ? errno : ENOMEM;
      return OID_NULL;
    }
    bytes_written_ += n;
    return oid;
  }

  bool Free(PMEMoid oid) {
    if (!ok()) return false;
    const int rc = pmemobj_tx_xfree(oid, POBJ_XFREE_NO_ABORT);
    if (rc != 0) err_ = rc;
    return ok();
  }

 private:
  int err_ = 0;
  uint64_t bytes_written_ = 0;
};

}  // namespace

class KvStore::Impl {
 public:
  static absl::StatusOr<std::unique_ptr<Impl>> Open(const StoreOptions& options);
  ~Impl() { pmemobj_close(pop_); }

  absl::StatusOr<std::vector<OpResult>> ApplyBatch(uint64_t index,
                                                   absl::Span<const Op> ops);
  std::optional<std::string> Get(std::string_view key) const {
    const Slot s = Find(key, kv_format::KeyHash(key));
    if (s.entry == nullptr) return std::nullopt;
    return std::string(ValueOf(s.entry));
  }
  uint64_t Size() const { return root_->key_count; }
  uint64_t AppliedIndex() const { return root_->applied_index; }
  uint64_t StateHash() const { return root_->state_hash; }
  void ForEach(const std::function<void(std::string_view, std::string_view)>& fn) const;
  StoreStats Stats() const { return stats_; }
  absl::Status Verify(TableShape* shape) const;
  StoreInfo Info() const;

 private:
  // Where a key is (or is not): `link` is the PMEMoid that points at `entry`
  // (its bucket slot or the previous entry's `next`).
  struct Slot {
    PMEMoid* link = nullptr;
    Entry* entry = nullptr;
  };

  Impl(PMEMobjpool* pop, std::string path, uint64_t file_bytes)
      : pop_(pop), base_(reinterpret_cast<char*>(pop)), path_(std::move(path)),
        file_bytes_(file_bytes) {}

  static absl::Status Create(const StoreOptions& options);
  absl::Status CheckRoot(const StoreOptions& options);

  // pmemobj_direct for our own pool: the pool is mapped at `pop_`.
  template <typename T>
  T* At(PMEMoid oid) const {
    return oid.off == 0 ? nullptr : reinterpret_cast<T*>(base_ + oid.off);
  }
  uint64_t Mask() const { return root_->bucket_count - 1; }

  Slot Find(std::string_view key, uint64_t hash) const;
  OpResult ApplyOp(Tx& tx, const Op& op);
  void Set(Tx& tx, std::string_view key, std::string_view value);
  bool Delete(Tx& tx, std::string_view key);
  OpResult IncrBy(Tx& tx, std::string_view key, int64_t delta);
  OpResult Append(Tx& tx, std::string_view key, std::string_view suffix);

  void Insert(Tx& tx, std::string_view key, uint64_t hash, std::string_view value,
              uint64_t value_capacity);
  void Overwrite(Tx& tx, const Slot& s, std::string_view value);
  void Relocate(Tx& tx, const Slot& s, std::string_view a, std::string_view b,
                uint64_t value_capacity);
  void Grow(Tx& tx);

  PMEMobjpool* pop_;
  char* base_;
  const std::string path_;
  const uint64_t file_bytes_;
  Root* root_ = nullptr;
  uint64_t uuid_lo_ = 0;
  // Cache of At(root_->buckets); refreshed after every transaction.
  PMEMoid* buckets_ = nullptr;
  StoreStats stats_;
};

absl::Status KvStore::Impl::Create(const StoreOptions& options) {
  if (options.pool_bytes < PMEMOBJ_MIN_POOL || options.pool_bytes > kPoolBytesMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "pool_bytes %d outside [%d, %d]", options.pool_bytes, PMEMOBJ_MIN_POOL, kPoolBytesMax));
  }
  // Built under a temporary name and renamed into place: a crash during
  // creation leaves no half-initialized pool at `path`.
  const std::string tmp = options.path + ".creating";
  if (unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, absl::StrCat("unlink ", tmp));
  }
  PMEMobjpool* pop =
      pmemobj_create(tmp.c_str(), kv_format::kLayoutName, options.pool_bytes, 0600);
  if (pop == nullptr) return PmemError(errno, absl::StrCat("create ", tmp));
  const PMEMoid root_oid = pmemobj_root(pop, sizeof(Root));
  int err = OID_IS_NULL(root_oid) ? errno : 0;
  if (err == 0) err = pmemobj_tx_begin(pop, nullptr, TX_PARAM_NONE);
  if (err == 0) {
    Tx tx;
    auto* root = static_cast<Root*>(pmemobj_direct(root_oid));
    tx.Snapshot(root, sizeof(Root));
    const PMEMoid buckets = tx.Alloc(options.initial_bucket_count * sizeof(PMEMoid),
                                     kv_format::kBucketsType, /*zero=*/true);
    if (tx.ok()) {
      *root = Root{};
      root->header.magic = kv_format::kMagic;
      root->header.layout_version = kv_format::kLayoutVersion;
      root->header.cluster_id = options.cluster_id;
      root->header.node_id = options.node_id;
      root->header.checksum = kv_format::HeaderChecksum(root->header);
      root->bucket_count = options.initial_bucket_count;
      root->buckets = buckets;
      pmemobj_tx_commit();
    } else if (pmemobj_tx_stage() == TX_STAGE_WORK) {
      pmemobj_tx_abort(tx.err());
    }
    err = pmemobj_tx_end();
  }
  pmemobj_close(pop);
  if (err != 0) {
    unlink(tmp.c_str());
    return PmemError(err, absl::StrCat("initialize ", tmp));
  }
  if (rename(tmp.c_str(), options.path.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("rename ", tmp, " to ", options.path));
  }
  return SyncDirectoryOf(options.path);
}

absl::StatusOr<std::unique_ptr<KvStore::Impl>> KvStore::Impl::Open(
    const StoreOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("empty pool path");
  if (!IsPowerOfTwo(options.initial_bucket_count) ||
      options.initial_bucket_count < kv_format::kBucketCountMin ||
      options.initial_bucket_count > kv_format::kBucketCountMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "initial_bucket_count %d is not a power of two in [%d, %d]",
        options.initial_bucket_count, kv_format::kBucketCountMin, kv_format::kBucketCountMax));
  }
  struct stat st;
  if (stat(options.path.c_str(), &st) != 0) {
    if (errno != ENOENT) return absl::ErrnoToStatus(errno, absl::StrCat("stat ", options.path));
    if (!options.create_if_missing) {
      return absl::NotFoundError(absl::StrCat("pool ", options.path, " does not exist"));
    }
    if (auto s = Create(options); !s.ok()) return s;
    if (stat(options.path.c_str(), &st) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("stat ", options.path));
    }
  }
  PMEMobjpool* pop = pmemobj_open(options.path.c_str(), kv_format::kLayoutName);
  if (pop == nullptr) return OpenError(options.path, errno);
  std::unique_ptr<Impl> impl(new Impl(pop, options.path, static_cast<uint64_t>(st.st_size)));
  if (auto s = impl->CheckRoot(options); !s.ok()) return s;
  if (options.verify_on_open) {
    if (auto s = impl->Verify(nullptr); !s.ok()) return s;
  }
  return impl;
}

// O(1) checks of the root: identity, then enough structure that Get and
// ApplyBatch cannot wander outside the pool. Verify() checks the rest.
absl::Status KvStore::Impl::CheckRoot(const StoreOptions& options) {
  const std::string where = absl::StrCat("pool ", path_, ": ");
  const size_t root_bytes = pmemobj_root_size(pop_);
  if (root_bytes < sizeof(Header)) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, "no Blizzard KV header (root object of ", root_bytes, " bytes)"));
  }
  const PMEMoid root_oid = pmemobj_root(pop_, root_bytes);
  ABSL_RAW_CHECK(!OID_IS_NULL(root_oid), "pmemobj_root of an existing root failed");
  uuid_lo_ = root_oid.pool_uuid_lo;
  root_ = static_cast<Root*>(pmemobj_direct(root_oid));
  const Header& h = root_->header;
  if (h.magic != kv_format::kMagic) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%sbad magic %#x: not a Blizzard KV pool", where, h.magic));
  }
  if (const uint64_t sum = kv_format::HeaderChecksum(h); sum != h.checksum) {
    return absl::DataLossError(absl::StrFormat(
        "%sheader checksum mismatch (stored %#x, computed %#x)", where, h.checksum, sum));
  }
  if (h.layout_version != kv_format::kLayoutVersion) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%slayout version %d, this build reads version %d", where,
                        h.layout_version, kv_format::kLayoutVersion));
  }
  if (options.check_identity &&
      (h.cluster_id != options.cluster_id || h.node_id != options.node_id)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%sbelongs to cluster %d node %d, expected cluster %d node %d", where, h.cluster_id,
        h.node_id, options.cluster_id, options.node_id));
  }
  if (root_bytes != sizeof(Root)) {
    return absl::DataLossError(absl::StrFormat("%sroot object of %d bytes, expected %d",
                                               where, root_bytes, sizeof(Root)));
  }
  const uint64_t n = root_->bucket_count;
  if (!IsPowerOfTwo(n) || n < kv_format::kBucketCountMin || n > kv_format::kBucketCountMax) {
    return absl::DataLossError(absl::StrFormat("%sbad bucket count %d", where, n));
  }
  const PMEMoid b = root_->buckets;
  if (b.pool_uuid_lo != uuid_lo_ || b.off == 0 || b.off % alignof(PMEMoid) != 0 ||
      b.off > file_bytes_ || n * sizeof(PMEMoid) > file_bytes_ - b.off) {
    return absl::DataLossError(
        absl::StrFormat("%sbucket array {%#x, %#x} outside the pool", where, b.pool_uuid_lo,
                        b.off));
  }
  buckets_ = At<PMEMoid>(b);
  return absl::OkStatus();
}

KvStore::Impl::Slot KvStore::Impl::Find(std::string_view key, uint64_t hash) const {
  PMEMoid* link = &buckets_[hash & Mask()];
  while (link->off != 0) {
    Entry* e = At<Entry>(*link);
    if (e->key_hash == hash && KeyOf(e) == key) return {link, e};
    link = &e->next;
  }
  return {};
}

absl::StatusOr<std::vector<OpResult>> KvStore::Impl::ApplyBatch(uint64_t index,
                                                                absl::Span<const Op> ops) {
  if (index <= root_->applied_index) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "index %d is not above the applied index %d", index, root_->applied_index));
  }
  if (ops.size() > kOpsPerBatchMax) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d ops exceed the batch limit %d", ops.size(), kOpsPerBatchMax));
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    if (auto s = ValidateOp(ops[i]); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("op ", i, ": ", s.message()));
    }
  }
  std::vector<OpResult> results;
  results.reserve(ops.size());
  const uint64_t hash_before = root_->state_hash;
  int err = pmemobj_tx_begin(pop_, nullptr, TX_PARAM_NONE);
  Tx tx;
  if (err == 0) {
    tx.Snapshot(reinterpret_cast<char*>(root_) + kv_format::kRootCountersOffset,
                kv_format::kRootCountersBytes);
    for (const Op& op : ops) {
      if (!tx.ok()) break;
      results.push_back(ApplyOp(tx, op));
    }
    if (tx.ok()) {
      root_->applied_index = index;
      pmemobj_tx_commit();
    } else if (pmemobj_tx_stage() == TX_STAGE_WORK) {
      pmemobj_tx_abort(tx.err());
    }
  }
  const int end_err = pmemobj_tx_end();
  if (err == 0) err = end_err;
  // An abort rolled the root back, possibly to the bucket array before a
  // resize: refresh the cache either way.
  buckets_ = At<PMEMoid>(root_->buckets);
  if (err != 0) {
    ABSL_RAW_CHECK(root_->applied_index < index && root_->state_hash == hash_before,
                   "aborted transaction left changes behind");
    return PmemError(err, absl::StrFormat("apply index %d", index));
  }
  ABSL_RAW_CHECK(root_->applied_index == index, "commit lost the applied index");
  ABSL_RAW_CHECK(results.size() == ops.size(), "one result per op");
  stats_.transactions++;
  stats_.ops_applied += ops.size();
  stats_.bytes_written += tx.bytes_written();
  return results;
}

OpResult KvStore::Impl::ApplyOp(Tx& tx, const Op& op) {
  switch (op.code) {
    case OpCode::kSet:
      Set(tx, op.args[0], op.args[1]);
      return OkResult();
    case OpCode::kMSet:
      for (size_t i = 0; i < op.args.size(); i += 2) Set(tx, op.args[i], op.args[i + 1]);
      return OkResult();
    case OpCode::kDel: {
      int64_t removed = 0;
      for (const std::string& key : op.args) removed += Delete(tx, key) ? 1 : 0;
      return IntegerResult(removed);
    }
    case OpCode::kIncrBy:
      return IncrBy(tx, op.args[0], op.delta);
    case OpCode::kAppend:
      return Append(tx, op.args[0], op.args[1]);
  }
  ABSL_RAW_CHECK(false, "ApplyOp: op was validated");
  return OkResult();
}

void KvStore::Impl::Set(Tx& tx, std::string_view key, std::string_view value) {
  const uint64_t hash = kv_format::KeyHash(key);
  const Slot s = Find(key, hash);
  if (s.entry != nullptr) {
    Overwrite(tx, s, value);
  } else {
    Insert(tx, key, hash, value, value.size());
  }
}

bool KvStore::Impl::Delete(Tx& tx, std::string_view key) {
  const Slot s = Find(key, kv_format::KeyHash(key));
  if (s.entry == nullptr || !tx.Snapshot(s.link, sizeof(PMEMoid))) return false;
  const PMEMoid victim = *s.link;
  *s.link = s.entry->next;
  root_->key_count--;
  root_->state_hash -= s.entry->pair_hash;
  // Freed at commit: the entry stays readable until then.
  return tx.Free(victim);
}

OpResult KvStore::Impl::IncrBy(Tx& tx, std::string_view key, int64_t delta) {
  const uint64_t hash = kv_format::KeyHash(key);
  const Slot s = Find(key, hash);
  int64_t value = 0;
  if (s.entry != nullptr && !ParseInt64(ValueOf(s.entry), &value)) {
    return ErrorResult(kNotIntegerError);
  }
  if (__builtin_add_overflow(value, delta, &value)) return ErrorResult(kOverflowError);
  const std::string text = absl::StrCat(value);
  if (s.entry != nullptr) {
    Overwrite(tx, s, text);
  } else {
    Insert(tx, key, hash, text, text.size());
  }
  return IntegerResult(value);
}

OpResult KvStore::Impl::Append(Tx& tx, std::string_view key, std::string_view suffix) {
  const uint64_t hash = kv_format::KeyHash(key);
  const Slot s = Find(key, hash);
  if (s.entry == nullptr) {
    Insert(tx, key, hash, suffix, suffix.size());
    return IntegerResult(static_cast<int64_t>(suffix.size()));
  }
  Entry* e = s.entry;
  const uint64_t old_bytes = e->value_bytes;
  const uint64_t new_bytes = old_bytes + suffix.size();
  if (new_bytes > kValueBytesMax) return ErrorResult(kTooLongError);
  if (suffix.empty()) return IntegerResult(static_cast<int64_t>(old_bytes));
  const size_t usable = pmemobj_alloc_usable_size(*s.link);
  if (EntryBytes(e->key_bytes, new_bytes) > usable) {
    Relocate(tx, s, ValueOf(e), suffix, AppendCapacity(new_bytes));
    return IntegerResult(static_cast<int64_t>(new_bytes));
  }
  // In place, into the allocation's slack.
  char* tail = Data(e) + e->key_bytes + old_bytes;
  if (!tx.Snapshot(&e->pair_hash, sizeof(Entry) - offsetof(Entry, pair_hash)) ||
      !tx.Snapshot(tail, suffix.size())) {
    return OkResult();  // The batch aborts; this result is dropped.
  }
  std::memcpy(tail, suffix.data(), suffix.size());
  e->value_bytes = static_cast<uint32_t>(new_bytes);
  const uint64_t old_pair = e->pair_hash;
  e->pair_hash = kv_format::PairHash(KeyOf(e), ValueOf(e));
  root_->state_hash += e->pair_hash - old_pair;
  return IntegerResult(static_cast<int64_t>(new_bytes));
}

void KvStore::Impl::Insert(Tx& tx, std::string_view key, uint64_t hash,
                           std::string_view value, uint64_t value_capacity) {
  ABSL_RAW_CHECK(value_capacity >= value.size(), "Insert: capacity below the value");
  if (root_->key_count + 1 > root_->bucket_count * kv_format::kLoadFactorMax &&
      root_->bucket_count < kv_format::kBucketCountMax) {
    Grow(tx);
  }
  const PMEMoid oid =
      tx.Alloc(EntryBytes(key.size(), value_capacity), kv_format::kEntryType, false);
  PMEMoid* head = &buckets_[hash & Mask()];
  if (!tx.Snapshot(head, sizeof(PMEMoid))) return;
  // A fresh allocation: written without snapshots, flushed at commit.
  Entry* e = At<Entry>(oid);
  e->next = *head;
  e->key_hash = hash;
  e->pair_hash = kv_format::PairHash(key, value);
  e->key_bytes = static_cast<uint32_t>(key.size());
  e->value_bytes = static_cast<uint32_t>(value.size());
  std::memcpy(Data(e), key.data(), key.size());
  std::memcpy(Data(e) + key.size(), value.data(), value.size());
  *head = oid;
  root_->key_count++;
  root_->state_hash += e->pair_hash;
}

void KvStore::Impl::Overwrite(Tx& tx, const Slot& s, std::string_view value) {
  Entry* e = s.entry;
  const size_t need = EntryBytes(e->key_bytes, value.size());
  const size_t usable = pmemobj_alloc_usable_size(*s.link);
  // Reuse the allocation if the value fits without wasting much of it.
  if (need > usable || usable - need > need + kSlackBytesMax) {
    Relocate(tx, s, value, {}, value.size());
    return;
  }
  char* dst = Data(e) + e->key_bytes;
  // One undo-log range from the header fields through the new value (the
  // key bytes between them are logged too, unchanged): one log entry and
  // fence instead of two.
  if (!tx.Snapshot(&e->pair_hash, static_cast<size_t>(dst + value.size() -
                                                      reinterpret_cast<char*>(&e->pair_hash)))) {
    return;
  }
  std::memcpy(dst, value.data(), value.size());
  e->value_bytes = static_cast<uint32_t>(value.size());
  const uint64_t old_pair = e->pair_hash;
  e->pair_hash = kv_format::PairHash(KeyOf(e), value);
  root_->state_hash += e->pair_hash - old_pair;
}

// Replaces the entry at `s` with a new allocation holding value a+b (either
// may point into the old entry, which stays readable until commit).
void KvStore::Impl::Relocate(Tx& tx, const Slot& s, std::string_view a, std::string_view b,
                             uint64_t value_capacity) {
  Entry* old = s.entry;
  const uint64_t value_bytes = a.size() + b.size();
  ABSL_RAW_CHECK(value_capacity >= value_bytes, "Relocate: capacity below the value");
  const PMEMoid oid =
      tx.Alloc(EntryBytes(old->key_bytes, value_capacity), kv_format::kEntryType, false);
  if (!tx.Snapshot(s.link, sizeof(PMEMoid))) return;
  Entry* e = At<Entry>(oid);
  e->next = old->next;
  e->key_hash = old->key_hash;
  e->key_bytes = old->key_bytes;
  e->value_bytes = static_cast<uint32_t>(value_bytes);
  char* d = Data(e);
  std::memcpy(d, Data(old), old->key_bytes);
  std::memcpy(d + old->key_bytes, a.data(), a.size());
  std::memcpy(d + old->key_bytes + a.size(), b.data(), b.size());
  e->pair_hash = kv_format::PairHash(KeyOf(e), ValueOf(e));
  root_->state_hash += e->pair_hash - old->pair_hash;
  const PMEMoid victim = *s.link;
  *s.link = oid;
  tx.Free(victim);
}

// Doubles the table inside the caller's transaction: every entry's `next`
// is undo-logged, so the cost is O(keys) in one transaction. (An
// incremental resize is a later issue; see README.md.)
void KvStore::Impl::Grow(Tx& tx) {
  const uint64_t old_count = root_->bucket_count;
  const uint64_t new_count = old_count * 2;
  const PMEMoid array =
      tx.Alloc(new_count * sizeof(PMEMoid), kv_format::kBucketsType, /*zero=*/true);
  if (!tx.Snapshot(&root_->bucket_count, sizeof(uint64_t) + sizeof(PMEMoid))) return;
  PMEMoid* fresh = At<PMEMoid>(array);
  const uint64_t mask = new_count - 1;
  // Buckets in order, chains in order, pushed on the new heads: the result
  // depends only on the table's content and history, never on addresses.
  for (uint64_t i = 0; i < old_count; ++i) {
    PMEMoid cur = buckets_[i];
    while (cur.off != 0) {
      Entry* e = At<Entry>(cur);
      const PMEMoid next = e->next;
      if (!tx.Snapshot(&e->next, sizeof(PMEMoid))) return;
      e->next = fresh[e->key_hash & mask];
      fresh[e->key_hash & mask] = cur;
      cur = next;
    }
  }
  if (!tx.Free(root_->buckets)) return;
  root_->bucket_count = new_count;
  root_->buckets = array;
  buckets_ = fresh;
}

void KvStore::Impl::ForEach(
    const std::function<void(std::string_view, std::string_view)>& fn) const {
  for (uint64_t i = 0; i < root_->bucket_count; ++i) {
    for (PMEMoid cur = buckets_[i]; cur.off != 0;) {
      Entry* e = At<Entry>(cur);
      fn(KeyOf(e), ValueOf(e));
      cur = e->next;
    }
  }
}

StoreInfo KvStore::Impl::Info() const {
  return StoreInfo{.layout_version = root_->header.layout_version,
                   .cluster_id = root_->header.cluster_id,
                   .node_id = root_->header.node_id,
                   .bucket_count = root_->bucket_count,
                   .pool_bytes = file_bytes_};
}

absl::Status KvStore::Impl::Verify(TableShape* shape_out) const {
  const std::string where = absl::StrCat("pool ", path_, ": ");
  auto damaged = [&where](const std::string& what) {
    return absl::DataLossError(absl::StrCat(where, what));
  };
  TableShape shape;
  // Every allocated object: offset -> (type, usable bytes). Pointers are
  // followed only into objects listed here, so a corrupt link is reported,
  // never dereferenced.
  absl::flat_hash_map<uint64_t, std::pair<uint64_t, size_t>> objects;
  for (PMEMoid o = pmemobj_first(pop_); !OID_IS_NULL(o); o = pmemobj_next(o)) {
    const uint64_t type = pmemobj_type_num(o);
    if (type != kv_format::kEntryType && type != kv_format::kBucketsType) {
      return damaged(absl::StrFormat("object at %#x has unknown type %d", o.off, type));
    }
    const size_t usable = pmemobj_alloc_usable_size(o);
    objects[o.off] = {type, usable};
    shape.bytes_allocated += usable;
  }
  shape.objects = objects.size();
  absl::flat_hash_set<uint64_t> reached;
  auto object = [&](PMEMoid oid, uint64_t type, const char* what) -> absl::StatusOr<size_t> {
    auto it = objects.find(oid.off);
    if (oid.pool_uuid_lo != uuid_lo_ || it == objects.end() || it->second.first != type) {
      return damaged(absl::StrFormat("%s {%#x, %#x} is not an allocated object of type %d",
                                     what, oid.pool_uuid_lo, oid.off, type));
    }
    if (!reached.insert(oid.off).second) {
      return damaged(absl::StrFormat("%s at %#x is reachable twice (cycle or shared link)",
                                     what, oid.off));
    }
    return it->second.second;
  };

  const uint64_t count = root_->bucket_count;
  auto usable = object(root_->buckets, kv_format::kBucketsType, "bucket array");
  if (!usable.ok()) return usable.status();
  if (*usable < count * sizeof(PMEMoid)) {
    return damaged(absl::StrFormat("bucket array of %d bytes holds fewer than %d buckets",
                                   *usable, count));
  }
  uint64_t keys = 0;
  uint64_t state_hash = 0;
  std::vector<Entry*> chain;
  for (uint64_t i = 0; i < count; ++i) {
    chain.clear();
    for (PMEMoid cur = buckets_[i]; cur.off != 0 || cur.pool_uuid_lo != 0;) {
      auto bytes = object(cur, kv_format::kEntryType, "entry");
      if (!bytes.ok()) return bytes.status();
      Entry* e = At<Entry>(cur);
      if (*bytes < sizeof(Entry) || e->key_bytes > kKeyBytesMax ||
          e->value_bytes > kValueBytesMax ||
          EntryBytes(e->key_bytes, e->value_bytes) > *bytes) {
        return damaged(absl::StrFormat("entry at %#x: sizes (%d, %d) do not fit %d bytes",
                                       cur.off, e->key_bytes, e->value_bytes, *bytes));
      }
      if (e->key_hash != kv_format::KeyHash(KeyOf(e)) || (e->key_hash & (count - 1)) != i) {
        return damaged(absl::StrFormat("entry at %#x: key hash does not match bucket %d",
                                       cur.off, i));
      }
      if (e->pair_hash != kv_format::PairHash(KeyOf(e), ValueOf(e))) {
        return damaged(absl::StrFormat("entry at %#x: pair checksum mismatch", cur.off));
      }
      for (Entry* other : chain) {
        if (other->key_hash == e->key_hash && KeyOf(other) == KeyOf(e)) {
          return damaged(absl::StrFormat("entry at %#x: duplicate key", cur.off));
        }
      }
      chain.push_back(e);
      keys++;
      state_hash += e->pair_hash;
      cur = e->next;
    }
    if (!chain.empty()) shape.buckets_used++;
    shape.chain_length_max = std::max<uint64_t>(shape.chain_length_max, chain.size());
  }
  if (reached.size() != objects.size()) {
    return damaged(absl::StrFormat("%d allocated objects are unreachable (leak)",
                                   objects.size() - reached.size()));
  }
  if (keys != root_->key_count) {
    return damaged(absl::StrFormat("key count %d, the table holds %d", root_->key_count, keys));
  }
  if (state_hash != root_->state_hash) {
    return damaged(absl::StrFormat("state hash %#x, the table hashes to %#x",
                                   root_->state_hash, state_hash));
  }
  if (count < kv_format::kBucketCountMax && keys > count * kv_format::kLoadFactorMax) {
    return damaged(absl::StrFormat("%d keys in %d buckets: load factor above %d", keys, count,
                                   kv_format::kLoadFactorMax));
  }
  if (shape_out != nullptr) *shape_out = shape;
  return absl::OkStatus();
}

// ---- KvStore: forwards to Impl. ----

absl::StatusOr<std::unique_ptr<KvStore>> KvStore::Open(const StoreOptions& options) {
  auto impl = Impl::Open(options);
  if (!impl.ok()) return impl.status();
  return std::unique_ptr<KvStore>(new KvStore(std::move(*impl)));
}

KvStore::KvStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KvStore::~KvStore() = default;

absl::StatusOr<std::vector<OpResult>> KvStore::ApplyBatch(uint64_t index,
                                                          absl::Span<const Op> ops) {
  return impl_->ApplyBatch(index, ops);
}
std::optional<std::string> KvStore::Get(std::string_view key) const { return impl_->Get(key); }
uint64_t KvStore::Size() const { return impl_->Size(); }
uint64_t KvStore::AppliedIndex() const { return impl_->AppliedIndex(); }
uint64_t KvStore::StateHash() const { return impl_->StateHash(); }
void KvStore::ForEach(
    const std::function<void(std::string_view key, std::string_view value)>& fn) const {
  impl_->ForEach(fn);
}
StoreStats KvStore::Stats() const { return impl_->Stats(); }
absl::Status KvStore::Verify(TableShape* shape) const { return impl_->Verify(shape); }
StoreInfo KvStore::Info() const { return impl_->Info(); }

}  // namespace blizzard::structures
