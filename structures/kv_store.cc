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

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/internal/raw_logging.h"
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

// The offsets of a pool's allocated objects, for Verify(): membership
// lookups and a "reached" mark per object, in ~12.1 bytes per object (a
// sorted array, a directory of the array by offset range, one bit each) and
// with no hashing. The directory has about one slot per object, so a lookup
// reads one slot pair and scans a handful of offsets.
class ObjectIndex {
 public:
  void Add(uint64_t off) { offsets_.push_back(off); }

  // After the last Add: sorts (libpmemobj lists objects in address order,
  // so this is a check) and builds the directory.
  absl::Status Seal(uint64_t pool_bytes) {
    if (offsets_.size() >= std::numeric_limits<uint32_t>::max()) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("%d objects: too many to verify", offsets_.size()));
    }
    if (!std::is_sorted(offsets_.begin(), offsets_.end())) {
      std::sort(offsets_.begin(), offsets_.end());
    }
    if (std::adjacent_find(offsets_.begin(), offsets_.end()) != offsets_.end()) {
      return absl::DataLossError("an object is listed twice by the heap");
    }
    // Ranges of 2^shift bytes, about as many as there are objects.
    shift_ = 4;
    while ((pool_bytes >> shift_) > std::max<size_t>(offsets_.size(), 1)) ++shift_;
    directory_.assign((pool_bytes >> shift_) + 2, 0);
    size_t i = 0;
    for (size_t range = 0; range < directory_.size(); ++range) {
      while (i < offsets_.size() && (offsets_[i] >> shift_) < range) ++i;
      directory_[range] = static_cast<uint32_t>(i);
    }
    reached_.assign((offsets_.size() + 63) / 64, 0);
    return absl::OkStatus();
  }

  size_t size() const { return offsets_.size(); }
  size_t reached() const { return reached_count_; }

  // The index of the object at `off`, if there is one.
  std::optional<size_t> Find(uint64_t off) const {
    const uint64_t range = off >> shift_;
    if (range + 1 >= directory_.size()) return std::nullopt;
    const auto first = offsets_.begin() + directory_[range];
    const auto last = offsets_.begin() + directory_[range + 1];
    const auto it = std::lower_bound(first, last, off);
    if (it == last || *it != off) return std::nullopt;
    return static_cast<size_t>(it - offsets_.begin());
  }

  // Marks object `i` reached; false if it already was.
  bool Reach(size_t i) {
    uint64_t& word = reached_[i / 64];
    const uint64_t bit = 1ull << (i % 64);
    if ((word & bit) != 0) return false;
    word |= bit;
    reached_count_++;
    return true;
  }

 private:
  std::vector<uint64_t> offsets_;
  // directory_[r]: index of the first offset at or above r << shift_.
  std::vector<uint32_t> directory_;
  int shift_ = 0;
  std::vector<uint64_t> reached_;
  size_t reached_count_ = 0;
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
  // Points the cached table addresses at the root's arrays: after open and
  // after every transaction (an abort may roll a resize back).
  void RefreshTables() {
    buckets_ = At<PMEMoid>(root_->buckets);
    old_buckets_ = At<PMEMoid>(root_->old_buckets);
  }
  bool Resizing() const { return old_buckets_ != nullptr; }
  // Buckets of the old table while resizing.
  uint64_t OldCount() const { return root_->bucket_count / 2; }
  // The bucket slot where a key with this hash lives (or would be inserted):
  // during a resize, the old table unless its old bucket has moved.
  PMEMoid* Home(uint64_t hash) const {
    if (Resizing()) {
      const uint64_t i = hash & (OldCount() - 1);
      if (i >= root_->migrate_cursor) return &old_buckets_[i];
    }
    return &buckets_[hash & (root_->bucket_count - 1)];
  }

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
  void StartResize(Tx& tx);
  void Migrate(Tx& tx, uint64_t old_buckets_max);
  bool MoveBucket(Tx& tx, uint64_t i);
  void FinishResize(Tx& tx);

  PMEMobjpool* pop_;
  char* base_;
  const std::string path_;
  const uint64_t file_bytes_;
  Root* root_ = nullptr;
  uint64_t uuid_lo_ = 0;
  // Caches of At(root_->buckets) and At(root_->old_buckets) (nullptr: no
  // resize in progress); see RefreshTables().
  PMEMoid* buckets_ = nullptr;
  PMEMoid* old_buckets_ = nullptr;
  // Old buckets the current batch owes the resize (kMigrateBucketsPerInsert
  // per inserted key), paid in steps; zero between batches.
  uint64_t migrate_debt_ = 0;
  // Resize counts of the current batch, added to stats_ if it commits.
  StoreStats batch_stats_;
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
  auto array_in_pool = [&](PMEMoid b, uint64_t buckets, const char* what) {
    if (b.pool_uuid_lo != uuid_lo_ || b.off == 0 || b.off % alignof(PMEMoid) != 0 ||
        b.off > file_bytes_ || buckets * sizeof(PMEMoid) > file_bytes_ - b.off) {
      return absl::DataLossError(absl::StrFormat("%s%s {%#x, %#x} outside the pool", where,
                                                 what, b.pool_uuid_lo, b.off));
    }
    return absl::OkStatus();
  };
  if (auto s = array_in_pool(root_->buckets, n, "bucket array"); !s.ok()) return s;
  const uint64_t cursor = root_->migrate_cursor;
  if (OID_IS_NULL(root_->old_buckets)) {
    if (cursor != 0) {
      return absl::DataLossError(
          absl::StrFormat("%smigrate cursor %d without a resize in progress", where, cursor));
    }
  } else {
    if (n < 2 * kv_format::kBucketCountMin || cursor >= n / 2) {
      return absl::DataLossError(absl::StrFormat(
          "%sresize from %d to %d buckets with migrate cursor %d", where, n / 2, n, cursor));
    }
    if (auto s = array_in_pool(root_->old_buckets, n / 2, "old bucket array"); !s.ok()) {
      return s;
    }
  }
  RefreshTables();
  return absl::OkStatus();
}

KvStore::Impl::Slot KvStore::Impl::Find(std::string_view key, uint64_t hash) const {
  PMEMoid* link = Home(hash);
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
  migrate_debt_ = 0;
  batch_stats_ = {};
  if (err == 0) {
    // During a resize the cursor moves too: one range either way.
    tx.Snapshot(reinterpret_cast<char*>(root_) + kv_format::kRootCountersOffset,
                Resizing() ? kv_format::kRootCountersAndCursorBytes
                           : kv_format::kRootCountersBytes);
    for (const Op& op : ops) {
      if (!tx.ok()) break;
      results.push_back(ApplyOp(tx, op));
    }
    // Every batch moves a quantum of a resize in progress (also one that
    // inserts nothing), plus what its inserts still owe.
    if (tx.ok() && Resizing()) Migrate(tx, migrate_debt_ + kv_format::kMigrateBucketsPerBatch);
    migrate_debt_ = 0;
    if (tx.ok()) {
      root_->applied_index = index;
      pmemobj_tx_commit();
    } else if (pmemobj_tx_stage() == TX_STAGE_WORK) {
      pmemobj_tx_abort(tx.err());
    }
  }
  const int end_err = pmemobj_tx_end();
  if (err == 0) err = end_err;
  // An abort rolled the root back, possibly to the tables before a resize
  // started or ended: refresh the caches either way.
  RefreshTables();
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
  stats_.resizes_started += batch_stats_.resizes_started;
  stats_.resizes_finished_at_once += batch_stats_.resizes_finished_at_once;
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
  if (!tx.ok()) return;
  if (root_->key_count + 1 > root_->bucket_count * kv_format::kLoadFactorMax &&
      root_->bucket_count < kv_format::kBucketCountMax) {
    // The pacing below finishes every resize of a table of >= 64 buckets
    // before the next is due; smaller tables may finish it here.
    if (Resizing()) {
      Migrate(tx, OldCount());
      batch_stats_.resizes_finished_at_once++;
    }
    StartResize(tx);
    batch_stats_.resizes_started++;
  }
  if (Resizing()) {
    migrate_debt_ += kv_format::kMigrateBucketsPerInsert;
    if (migrate_debt_ >= kv_format::kMigrateStepBuckets) {
      Migrate(tx, migrate_debt_);
      migrate_debt_ = 0;
    }
  }
  const PMEMoid oid =
      tx.Alloc(EntryBytes(key.size(), value_capacity), kv_format::kEntryType, false);
  // After the migration step above: the key's home is where it is now.
  PMEMoid* head = Home(hash);
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

// Starts doubling the table: a zeroed array of twice the buckets becomes
// the table, the current one the old table, and the cursor starts at old
// bucket 0. O(1) apart from allocating (and zeroing) the array; the entries
// move later, a bounded number of buckets per batch (Migrate).
void KvStore::Impl::StartResize(Tx& tx) {
  if (!tx.ok()) return;
  ABSL_RAW_CHECK(!Resizing(), "StartResize: a resize is in progress");
  const uint64_t old_count = root_->bucket_count;
  const PMEMoid array =
      tx.Alloc(2 * old_count * sizeof(PMEMoid), kv_format::kBucketsType, /*zero=*/true);
  if (!tx.Snapshot(reinterpret_cast<char*>(root_) + kv_format::kRootResizeOffset,
                   kv_format::kRootResizeBytes)) {
    return;
  }
  root_->old_buckets = root_->buckets;
  root_->buckets = array;
  root_->bucket_count = 2 * old_count;
  root_->migrate_cursor = 0;
  RefreshTables();
}

// Moves up to `old_buckets_max` old buckets, from the cursor on, and ends
// the resize when the last one has moved.
void KvStore::Impl::Migrate(Tx& tx, uint64_t old_buckets_max) {
  if (!tx.ok()) return;  // The batch aborts; the cursor may be at the end.
  ABSL_RAW_CHECK(Resizing(), "Migrate: no resize in progress");
  const uint64_t old_count = OldCount();
  const uint64_t begin = root_->migrate_cursor;
  const uint64_t end = begin + std::min(old_buckets_max, old_count - begin);
  ABSL_RAW_CHECK(begin < end, "Migrate: nothing to move");
  // Old bucket i splits into new buckets i and i + old_count: two
  // contiguous ranges of heads, two undo-log entries for the whole step.
  const size_t heads_bytes = (end - begin) * sizeof(PMEMoid);
  if (!tx.Snapshot(&buckets_[begin], heads_bytes) ||
      !tx.Snapshot(&buckets_[begin + old_count], heads_bytes)) {
    return;
  }
  for (uint64_t i = begin; i < end; ++i) {
    if (!MoveBucket(tx, i)) return;
  }
  // Logged with the counters (or when this batch started the resize).
  root_->migrate_cursor = end;
  if (end == old_count) FinishResize(tx);
}

// Splits old bucket `i`'s chain over new buckets i and i + old_count,
// keeping the entries' relative order: a deterministic result, and an
// entry's `next` changes (and is logged) only where its successor went to
// the other half. The new heads were logged by the caller; the old slot is
// left as it is (dead: below the cursor, never read again).
bool KvStore::Impl::MoveBucket(Tx& tx, uint64_t i) {
  const uint64_t old_count = OldCount();
  PMEMoid* const heads[2] = {&buckets_[i], &buckets_[i + old_count]};
  ABSL_RAW_CHECK(OID_IS_NULL(*heads[0]) && OID_IS_NULL(*heads[1]),
                 "MoveBucket: new buckets filled before their old bucket moved");
  Entry* last[2] = {nullptr, nullptr};
  auto link = [&tx](Entry* e, PMEMoid next) {
    if (e->next.off == next.off && e->next.pool_uuid_lo == next.pool_uuid_lo) return true;
    if (!tx.Snapshot(&e->next, sizeof(PMEMoid))) return false;
    e->next = next;
    return true;
  };
  for (PMEMoid cur = old_buckets_[i]; cur.off != 0;) {
    Entry* e = At<Entry>(cur);
    const PMEMoid next = e->next;
    const int half = (e->key_hash & old_count) != 0 ? 1 : 0;
    if (last[half] == nullptr) {
      *heads[half] = cur;
    } else if (!link(last[half], cur)) {
      return false;
    }
    last[half] = e;
    cur = next;
  }
  for (Entry* e : last) {
    if (e != nullptr && !link(e, OID_NULL)) return false;
  }
  return true;
}

// Every old bucket has moved: the old array goes.
void KvStore::Impl::FinishResize(Tx& tx) {
  ABSL_RAW_CHECK(root_->migrate_cursor == OldCount(), "FinishResize: buckets left to move");
  if (!tx.Free(root_->old_buckets) ||
      !tx.Snapshot(reinterpret_cast<char*>(root_) + kv_format::kRootResizeOffset,
                   kv_format::kRootResizeBytes)) {
    return;
  }
  root_->old_buckets = OID_NULL;
  root_->migrate_cursor = 0;
  RefreshTables();
}

void KvStore::Impl::ForEach(
    const std::function<void(std::string_view, std::string_view)>& fn) const {
  auto walk = [&](const PMEMoid* table, uint64_t begin, uint64_t end) {
    for (uint64_t i = begin; i < end; ++i) {
      for (PMEMoid cur = table[i]; cur.off != 0;) {
        Entry* e = At<Entry>(cur);
        fn(KeyOf(e), ValueOf(e));
        cur = e->next;
      }
    }
  };
  // During a resize the new buckets whose old bucket has not moved yet are
  // empty (Verify checks it), so walking the whole new table is exact.
  walk(buckets_, 0, root_->bucket_count);
  if (Resizing()) walk(old_buckets_, root_->migrate_cursor, OldCount());
}

StoreInfo KvStore::Impl::Info() const {
  return StoreInfo{.layout_version = root_->header.layout_version,
                   .cluster_id = root_->header.cluster_id,
                   .node_id = root_->header.node_id,
                   .bucket_count = root_->bucket_count,
                   .pool_bytes = file_bytes_,
                   .old_bucket_count = Resizing() ? OldCount() : 0,
                   .migrate_cursor = root_->migrate_cursor};
}

absl::Status KvStore::Impl::Verify(TableShape* shape_out) const {
  const std::string where = absl::StrCat("pool ", path_, ": ");
  auto damaged = [&where](const std::string& what) {
    return absl::DataLossError(absl::StrCat(where, what));
  };
  TableShape shape;
  // Every allocated object. Links are followed only into objects found
  // here, so a corrupt link is reported, never dereferenced.
  ObjectIndex objects;
  for (PMEMoid o = pmemobj_first(pop_); !OID_IS_NULL(o); o = pmemobj_next(o)) {
    const uint64_t type = pmemobj_type_num(o);
    if (type != kv_format::kEntryType && type != kv_format::kBucketsType) {
      return damaged(absl::StrFormat("object at %#x has unknown type %d", o.off, type));
    }
    if (o.off >= file_bytes_) {
      return damaged(absl::StrFormat("object at %#x beyond the pool's %d bytes", o.off,
                                     file_bytes_));
    }
    objects.Add(o.off);
    shape.bytes_allocated += pmemobj_alloc_usable_size(o);
  }
  if (auto s = objects.Seal(file_bytes_); !s.ok()) return damaged(std::string(s.message()));
  shape.objects = objects.size();
  // Usable bytes of the object `oid` points at, after checking it is an
  // allocated object of `type` in this pool, reached for the first time.
  auto object = [&](PMEMoid oid, uint64_t type, const char* what) -> absl::StatusOr<size_t> {
    const std::optional<size_t> i =
        oid.pool_uuid_lo == uuid_lo_ ? objects.Find(oid.off) : std::nullopt;
    if (!i.has_value() || pmemobj_type_num(oid) != type) {
      return damaged(absl::StrFormat("%s {%#x, %#x} is not an allocated object of type %d",
                                     what, oid.pool_uuid_lo, oid.off, type));
    }
    if (!objects.Reach(*i)) {
      return damaged(absl::StrFormat("%s at %#x is reachable twice (cycle or shared link)",
                                     what, oid.off));
    }
    return pmemobj_alloc_usable_size(oid);
  };
  auto array = [&](PMEMoid oid, uint64_t buckets, const char* what) -> absl::Status {
    auto usable = object(oid, kv_format::kBucketsType, what);
    if (!usable.ok()) return usable.status();
    if (*usable < buckets * sizeof(PMEMoid)) {
      return damaged(absl::StrFormat("%s of %d bytes holds fewer than %d buckets", what,
                                     *usable, buckets));
    }
    return absl::OkStatus();
  };

  const uint64_t count = root_->bucket_count;
  // Zero, or the old table's buckets during a resize.
  const uint64_t old_count = Resizing() ? OldCount() : 0;
  const uint64_t cursor = root_->migrate_cursor;
  if (auto s = array(root_->buckets, count, "bucket array"); !s.ok()) return s;
  if (Resizing()) {
    if (auto s = array(root_->old_buckets, old_count, "old bucket array"); !s.ok()) return s;
  }
  uint64_t keys = 0;
  uint64_t state_hash = 0;
  std::vector<Entry*> chain;
  // Walks one chain, whose keys must hash to `bucket` under `mask`.
  auto walk = [&](PMEMoid head, uint64_t mask, uint64_t bucket,
                  const char* table) -> absl::Status {
    chain.clear();
    for (PMEMoid cur = head; cur.off != 0 || cur.pool_uuid_lo != 0;) {
      auto bytes = object(cur, kv_format::kEntryType, "entry");
      if (!bytes.ok()) return bytes.status();
      Entry* e = At<Entry>(cur);
      if (*bytes < sizeof(Entry) || e->key_bytes > kKeyBytesMax ||
          e->value_bytes > kValueBytesMax ||
          EntryBytes(e->key_bytes, e->value_bytes) > *bytes) {
        return damaged(absl::StrFormat("entry at %#x: sizes (%d, %d) do not fit %d bytes",
                                       cur.off, e->key_bytes, e->value_bytes, *bytes));
      }
      if (e->key_hash != kv_format::KeyHash(KeyOf(e)) || (e->key_hash & mask) != bucket) {
        return damaged(absl::StrFormat("entry at %#x: key hash does not match %s bucket %d",
                                       cur.off, table, bucket));
      }
      if (e->pair_hash != kv_format::PairHash(KeyOf(e), ValueOf(e))) {
        return damaged(absl::StrFormat("entry at %#x: pair checksum mismatch", cur.off));
      }
      // A key's hash picks its bucket, so a duplicate would share the chain.
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
    return absl::OkStatus();
  };
  for (uint64_t j = 0; j < count; ++j) {
    // During a resize, new buckets whose old bucket has not moved yet must
    // be empty: their keys still live in the old table.
    if (Resizing() && (j & (old_count - 1)) >= cursor) {
      if (!OID_IS_NULL(buckets_[j])) {
        return damaged(absl::StrFormat(
            "new bucket %d is not empty but its old bucket %d has not moved (cursor %d)", j,
            j & (old_count - 1), cursor));
      }
      continue;
    }
    if (auto s = walk(buckets_[j], count - 1, j, "new"); !s.ok()) return s;
  }
  // The old table's live part; its slots below the cursor are dead.
  for (uint64_t i = cursor; i < old_count; ++i) {
    if (auto s = walk(old_buckets_[i], old_count - 1, i, "old"); !s.ok()) return s;
  }
  if (objects.reached() != objects.size()) {
    return damaged(absl::StrFormat("%d allocated objects are unreachable (leak)",
                                   objects.size() - objects.reached()));
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
