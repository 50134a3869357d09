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
#include <functional>
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

// A zeroed directory or segment of `entries` PMEMoids (null: empty).
PMEMoid AllocTableObject(Tx& tx, uint64_t entries, uint64_t type) {
  return tx.Alloc(std::max(entries * sizeof(PMEMoid), kv_format::kTableObjectBytesMin), type,
                  /*zero=*/true);
}

// A new table of `buckets` buckets: its directory, zeroed, and if
// `segments` all its segments, zeroed (empty buckets). Fresh allocations:
// written without snapshots. Null on failure (tx says why).
PMEMoid AllocTable(Tx& tx, uint64_t buckets, bool segments) {
  const uint64_t entries = kv_format::DirectoryEntries(buckets);
  const PMEMoid directory = AllocTableObject(tx, entries, kv_format::kDirectoryType);
  if (!tx.ok() || !segments) return directory;
  auto* slots = static_cast<PMEMoid*>(pmemobj_direct(directory));
  for (uint64_t s = 0; s < entries && tx.ok(); ++s) {
    slots[s] = AllocTableObject(tx, kv_format::SegmentBuckets(buckets), kv_format::kSegmentType);
  }
  return tx.ok() ? directory : OID_NULL;
}

// What Verify() keeps per allocated object, in arrays indexed by the
// object's rank in address order: ~25 bytes per object, no hashing.
//   offset (8), type (1), an entry's `next` link offset (8) and the low 32
//   bits of its key hash (4); a directory of the offsets by address range,
//   about one 4-byte slot per object, for O(1) lookups; a "reached" bit.
// The chain walk runs over these arrays, not the pool: the pool is read
// once, in address order.
class ObjectIndex {
 public:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

  // Room for `objects` objects (no doubling of the arrays if right).
  void Reserve(size_t objects) {
    offsets_.reserve(objects);
    types_.reserve(objects);
    next_offsets_.reserve(objects);
    hash_lows_.reserve(objects);
  }

  void Add(uint64_t off, uint8_t type, uint64_t next_off, uint32_t hash_low) {
    offsets_.push_back(off);
    types_.push_back(type);
    next_offsets_.push_back(next_off);
    hash_lows_.push_back(hash_low);
  }

  // After the last Add: checks the order (libpmemobj lists objects by
  // address) and builds the directory.
  absl::Status Seal(uint64_t pool_bytes) {
    if (offsets_.size() >= kNone) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("%d objects: too many to verify", offsets_.size()));
    }
    for (size_t i = 1; i < offsets_.size(); ++i) {
      if (offsets_[i] <= offsets_[i - 1]) {
        return absl::DataLossError(absl::StrFormat(
            "the heap lists object %#x after %#x", offsets_[i], offsets_[i - 1]));
      }
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
  uint64_t offset(uint32_t i) const { return offsets_[i]; }
  uint8_t type(uint32_t i) const { return types_[i]; }
  uint64_t next_offset(uint32_t i) const { return next_offsets_[i]; }
  uint32_t hash_low(uint32_t i) const { return hash_lows_[i]; }

  // The rank of the object at `off`, or kNone.
  uint32_t Find(uint64_t off) const {
    const uint64_t range = off >> shift_;
    if (range + 1 >= directory_.size()) return kNone;
    const auto first = offsets_.begin() + directory_[range];
    const auto last = offsets_.begin() + directory_[range + 1];
    const auto it = std::lower_bound(first, last, off);
    if (it == last || *it != off) return kNone;
    return static_cast<uint32_t>(it - offsets_.begin());
  }

  // Marks object `i` reached; false if it already was.
  bool Reach(uint32_t i) {
    uint64_t& word = reached_[i / 64];
    const uint64_t bit = 1ull << (i % 64);
    if ((word & bit) != 0) return false;
    word |= bit;
    reached_count_++;
    return true;
  }

 private:
  std::vector<uint64_t> offsets_;
  std::vector<uint8_t> types_;
  std::vector<uint64_t> next_offsets_;
  std::vector<uint32_t> hash_lows_;
  // directory_[r]: rank of the first offset at or above r << shift_.
  std::vector<uint32_t> directory_;
  int shift_ = 0;
  std::vector<uint64_t> reached_;
  size_t reached_count_ = 0;
};

// A bucket table as the store uses it: a directory of segments
// (FORMAT.md). Volatile; rebuilt from the root after every transaction.
struct Table {
  PMEMoid* directory = nullptr;  // nullptr: no such table.
  uint64_t buckets = 0;
  uint64_t segment_buckets = 0;
  int segment_shift = 0;  // log2(segment_buckets)
};

}  // namespace

class KvStore::Impl {
 public:
  static absl::StatusOr<std::unique_ptr<Impl>> Open(const StoreOptions& options);
  ~Impl() { pmemobj_close(pop_); }

  absl::StatusOr<std::vector<OpResult>> ApplyBatch(uint64_t index,
                                                   absl::Span<const Op> ops,
                                                   const KvStore::Epilogue& epilogue);
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
  // Rebuilds the volatile table views from the root: after open and after
  // every transaction (an abort may roll a resize back).
  void RefreshTables() {
    table_ = MakeTable(root_->directory, root_->bucket_count);
    old_ = MakeTable(root_->old_directory, root_->bucket_count / 2);
  }
  Table MakeTable(PMEMoid directory, uint64_t buckets) const {
    Table t;
    t.directory = At<PMEMoid>(directory);
    if (t.directory == nullptr) return t;
    t.buckets = buckets;
    t.segment_buckets = kv_format::SegmentBuckets(buckets);
    t.segment_shift = __builtin_ctzll(t.segment_buckets);
    return t;
  }
  bool Resizing() const { return old_.directory != nullptr; }
  // The head of bucket `j` of table `t`; its segment must exist.
  PMEMoid* Bucket(const Table& t, uint64_t j) const {
    PMEMoid* segment = At<PMEMoid>(t.directory[j >> t.segment_shift]);
    ABSL_RAW_CHECK(segment != nullptr, "Bucket: segment not allocated");
    return segment + (j & (t.segment_buckets - 1));
  }
  // The bucket where a key with this hash lives (or would be inserted):
  // during a resize, the old table unless its old bucket has moved.
  PMEMoid* Home(uint64_t hash) const {
    if (Resizing()) {
      const uint64_t i = hash & (old_.buckets - 1);
      if (i >= root_->migrate_cursor) return Bucket(old_, i);
    }
    return Bucket(table_, hash & (table_.buckets - 1));
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
  // The segment of `t` holding bucket `j`, allocated (zeroed) if missing.
  bool EnsureSegment(Tx& tx, const Table& t, uint64_t j);
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
  // The table and, during a resize, the old one; see RefreshTables().
  Table table_;
  Table old_;
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
    const PMEMoid directory = AllocTable(tx, options.initial_bucket_count, /*segments=*/true);
    if (tx.ok()) {
      *root = Root{};
      root->header.magic = kv_format::kMagic;
      root->header.layout_version = kv_format::kLayoutVersion;
      root->header.cluster_id = options.cluster_id;
      root->header.node_id = options.node_id;
      root->header.checksum = kv_format::HeaderChecksum(root->header);
      root->bucket_count = options.initial_bucket_count;
      root->directory = directory;
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
  const bool adopt = options.check_identity && options.adopt_node_id &&
                     h.cluster_id == options.cluster_id && h.node_id != options.node_id;
  if (options.check_identity && !adopt &&
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
  // The directories and every segment they list lie inside the pool, so
  // lookups stay inside the mapping even without Verify(). O(segments).
  auto array_in_pool = [&](PMEMoid b, uint64_t entries, const char* what) {
    if (b.pool_uuid_lo != uuid_lo_ || b.off == 0 || b.off % alignof(PMEMoid) != 0 ||
        b.off > file_bytes_ || entries * sizeof(PMEMoid) > file_bytes_ - b.off) {
      return absl::DataLossError(absl::StrFormat("%s%s {%#x, %#x} outside the pool", where,
                                                 what, b.pool_uuid_lo, b.off));
    }
    return absl::OkStatus();
  };
  auto table_in_pool = [&](PMEMoid directory, uint64_t buckets, const char* what) {
    const uint64_t entries = kv_format::DirectoryEntries(buckets);
    if (auto s = array_in_pool(directory, entries, what); !s.ok()) return s;
    const auto* segments = At<PMEMoid>(directory);
    for (uint64_t i = 0; i < entries; ++i) {
      if (OID_IS_NULL(segments[i])) continue;  // Not allocated yet or freed.
      if (auto s = array_in_pool(segments[i], kv_format::SegmentBuckets(buckets),
                                 "bucket segment");
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  };
  if (auto s = table_in_pool(root_->directory, n, "bucket directory"); !s.ok()) return s;
  const uint64_t cursor = root_->migrate_cursor;
  if (OID_IS_NULL(root_->old_directory)) {
    if (cursor != 0) {
      return absl::DataLossError(
          absl::StrFormat("%smigrate cursor %d without a resize in progress", where, cursor));
    }
  } else {
    if (n < 2 * kv_format::kBucketCountMin || cursor >= n / 2) {
      return absl::DataLossError(absl::StrFormat(
          "%sresize from %d to %d buckets with migrate cursor %d", where, n / 2, n, cursor));
    }
    if (auto s = table_in_pool(root_->old_directory, n / 2, "old bucket directory"); !s.ok()) {
      return s;
    }
  }
  if (adopt) {
    // Node id and checksum change together or not at all.
    int err = pmemobj_tx_begin(pop_, nullptr, TX_PARAM_NONE);
    if (err == 0) {
      Tx tx;
      tx.Snapshot(&root_->header, sizeof(Header));
      if (tx.ok()) {
        root_->header.node_id = options.node_id;
        root_->header.checksum = kv_format::HeaderChecksum(root_->header);
        pmemobj_tx_commit();
      } else if (pmemobj_tx_stage() == TX_STAGE_WORK) {
        pmemobj_tx_abort(tx.err());
      }
      err = pmemobj_tx_end();
    }
    if (err != 0) return PmemError(err, absl::StrCat(where, "re-stamping the node id"));
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

absl::StatusOr<std::vector<OpResult>> KvStore::Impl::ApplyBatch(
    uint64_t index, absl::Span<const Op> ops, const KvStore::Epilogue& epilogue) {
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
  bool epilogue_invalid = false;
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
    if (tx.ok() && epilogue) {
      const std::vector<Op> extra = epilogue(results);
      for (size_t i = 0; i < extra.size() && tx.ok(); ++i) {
        if (!ValidateOp(extra[i]).ok()) {
          epilogue_invalid = true;
          break;
        }
        (void)ApplyOp(tx, extra[i]);
      }
    }
    // Every batch moves a quantum of a resize in progress (also one that
    // inserts nothing), plus what its inserts still owe.
    if (tx.ok() && Resizing()) Migrate(tx, migrate_debt_ + kv_format::kMigrateBucketsPerBatch);
    migrate_debt_ = 0;
    if (epilogue_invalid) {
      pmemobj_tx_abort(EINVAL);
    } else if (tx.ok()) {
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
    if (epilogue_invalid) {
      return absl::InvalidArgumentError(absl::StrFormat("apply index %d: an epilogue op is invalid", index));
    }
    return PmemError(err, absl::StrFormat("apply index %d", index));
  }
  ABSL_RAW_CHECK(root_->applied_index == index, "commit lost the applied index");
  ABSL_RAW_CHECK(Resizing() ? root_->migrate_cursor < old_.buckets : root_->migrate_cursor == 0,
                 "resize cursor out of range after commit");
  ABSL_RAW_CHECK(root_->bucket_count >= kv_format::kBucketCountMax ||
                     root_->key_count <= root_->bucket_count * kv_format::kLoadFactorMax,
                 "load factor above the bound after commit");
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
      Migrate(tx, old_.buckets);
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
  if (!tx.ok()) return;  // The batch aborts (a step above may be half done).
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

// Starts doubling the table: a directory for twice the buckets becomes the
// table, the current one the old table, and the cursor starts at old
// bucket 0. O(1): the new segments are allocated as buckets move into them
// (Migrate), so no batch allocates or zeroes a whole table.
void KvStore::Impl::StartResize(Tx& tx) {
  if (!tx.ok()) return;
  ABSL_RAW_CHECK(!Resizing(), "StartResize: a resize is in progress");
  const uint64_t old_count = root_->bucket_count;
  const PMEMoid directory = AllocTable(tx, 2 * old_count, /*segments=*/false);
  if (!tx.Snapshot(reinterpret_cast<char*>(root_) + kv_format::kRootResizeOffset,
                   kv_format::kRootResizeBytes)) {
    return;
  }
  root_->old_directory = root_->directory;
  root_->directory = directory;
  root_->bucket_count = 2 * old_count;
  root_->migrate_cursor = 0;
  RefreshTables();
}

bool KvStore::Impl::EnsureSegment(Tx& tx, const Table& t, uint64_t j) {
  PMEMoid* slot = &t.directory[j >> t.segment_shift];
  if (!OID_IS_NULL(*slot)) return true;
  const PMEMoid segment = AllocTableObject(tx, t.segment_buckets, kv_format::kSegmentType);
  if (!tx.Snapshot(slot, sizeof(PMEMoid))) return false;
  *slot = segment;
  return true;
}

// Moves up to `old_buckets_max` old buckets, from the cursor on, and ends
// the resize when the last one has moved. Works in runs that stay inside
// one segment (old and new segments share boundaries: both hold
// kSegmentBucketsMax buckets, or the whole table).
void KvStore::Impl::Migrate(Tx& tx, uint64_t old_buckets_max) {
  if (!tx.ok()) return;  // The batch aborts; the cursor may be at the end.
  ABSL_RAW_CHECK(Resizing(), "Migrate: no resize in progress");
  const uint64_t old_count = old_.buckets;
  uint64_t left = old_buckets_max;
  while (left > 0 && Resizing() && tx.ok()) {
    const uint64_t begin = root_->migrate_cursor;
    const uint64_t segment_end = (begin | (old_.segment_buckets - 1)) + 1;
    const uint64_t end = std::min(begin + left, segment_end);
    ABSL_RAW_CHECK(begin < end && end <= old_count, "Migrate: bad run");
    // Old bucket i splits into new buckets i and i + old_count: two runs of
    // heads, in one or two new segments, allocated when first needed.
    if (!EnsureSegment(tx, table_, begin) || !EnsureSegment(tx, table_, begin + old_count)) {
      return;
    }
    const size_t heads_bytes = (end - begin) * sizeof(PMEMoid);
    if (!tx.Snapshot(Bucket(table_, begin), heads_bytes) ||
        !tx.Snapshot(Bucket(table_, begin + old_count), heads_bytes)) {
      return;
    }
    for (uint64_t i = begin; i < end; ++i) {
      if (!MoveBucket(tx, i)) return;
    }
    // Logged with the counters (or when this batch started the resize).
    root_->migrate_cursor = end;
    left -= end - begin;
    if (end == segment_end) {
      // Every bucket of this old segment has moved: it goes.
      PMEMoid* slot = &old_.directory[begin >> old_.segment_shift];
      if (!tx.Free(*slot) || !tx.Snapshot(slot, sizeof(PMEMoid))) return;
      *slot = OID_NULL;
    }
    if (end == old_count) FinishResize(tx);
  }
}

// Splits old bucket `i`'s chain over new buckets i and i + old_count,
// keeping the entries' relative order: a deterministic result, and an
// entry's `next` changes (and is logged) only where its successor went to
// the other half. The new heads were logged by the caller; the old slot is
// left as it is (below the cursor: dead, never read again).
bool KvStore::Impl::MoveBucket(Tx& tx, uint64_t i) {
  const uint64_t old_count = old_.buckets;
  PMEMoid* const heads[2] = {Bucket(table_, i), Bucket(table_, i + old_count)};
  ABSL_RAW_CHECK(OID_IS_NULL(*heads[0]) && OID_IS_NULL(*heads[1]),
                 "MoveBucket: new buckets filled before their old bucket moved");
  Entry* last[2] = {nullptr, nullptr};
  auto link = [&tx](Entry* e, PMEMoid next) {
    if (e->next.off == next.off && e->next.pool_uuid_lo == next.pool_uuid_lo) return true;
    if (!tx.Snapshot(&e->next, sizeof(PMEMoid))) return false;
    e->next = next;
    return true;
  };
  for (PMEMoid cur = *Bucket(old_, i); cur.off != 0;) {
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

// Every old bucket has moved (and every old segment is freed): the old
// directory goes.
void KvStore::Impl::FinishResize(Tx& tx) {
  ABSL_RAW_CHECK(root_->migrate_cursor == old_.buckets, "FinishResize: buckets left to move");
  if (!tx.Free(root_->old_directory) ||
      !tx.Snapshot(reinterpret_cast<char*>(root_) + kv_format::kRootResizeOffset,
                   kv_format::kRootResizeBytes)) {
    return;
  }
  root_->old_directory = OID_NULL;
  root_->migrate_cursor = 0;
  RefreshTables();
}

void KvStore::Impl::ForEach(
    const std::function<void(std::string_view, std::string_view)>& fn) const {
  auto walk = [&](const Table& t, uint64_t begin) {
    for (uint64_t i = begin; i < t.buckets; ++i) {
      // During a resize, new segments that no bucket has moved into yet
      // are not allocated; the allocated ones hold empty buckets where the
      // old bucket has not moved (Verify checks both).
      if (OID_IS_NULL(t.directory[i >> t.segment_shift])) {
        i |= t.segment_buckets - 1;
        continue;
      }
      for (PMEMoid cur = *Bucket(t, i); cur.off != 0;) {
        Entry* e = At<Entry>(cur);
        fn(KeyOf(e), ValueOf(e));
        cur = e->next;
      }
    }
  };
  walk(table_, 0);
  if (Resizing()) walk(old_, root_->migrate_cursor);
}

StoreInfo KvStore::Impl::Info() const {
  return StoreInfo{.layout_version = root_->header.layout_version,
                   .cluster_id = root_->header.cluster_id,
                   .node_id = root_->header.node_id,
                   .bucket_count = root_->bucket_count,
                   .pool_bytes = file_bytes_,
                   .old_bucket_count = old_.buckets,
                   .migrate_cursor = root_->migrate_cursor};
}

// Two passes. The first reads every allocated object once, in address
// order (libpmemobj's iteration order, which is also the cheapest order to
// read the pool in), checks each entry on its own (sizes, key hash, pair
// checksum) and keeps what the second needs in an ObjectIndex. The second
// walks the tables and their chains over the index, not the pool: every
// link must lead to an allocated object of the right type, every object
// must be reached exactly once, every entry from the bucket its key hashes
// to in the table the cursor says.
absl::Status KvStore::Impl::Verify(TableShape* shape_out) const {
  const std::string where = absl::StrCat("pool ", path_, ": ");
  auto damaged = [&where](const std::string& what) {
    return absl::DataLossError(absl::StrCat(where, what));
  };
  TableShape shape;
  ObjectIndex objects;
  // Entries, plus two tables' directories and segments. The stored count
  // is not trusted beyond sizing this, and capped: past the cap the
  // arrays grow as needed.
  constexpr uint64_t kReserveObjectsMax = 1ull << 24;
  objects.Reserve(std::min<uint64_t>(root_->key_count, kReserveObjectsMax) + 2 +
                  3 * kv_format::DirectoryEntries(root_->bucket_count));
  uint64_t keys = 0;
  uint64_t state_hash = 0;
  for (PMEMoid o = pmemobj_first(pop_); !OID_IS_NULL(o); o = pmemobj_next(o)) {
    const uint64_t type = pmemobj_type_num(o);
    const size_t usable = pmemobj_alloc_usable_size(o);
    if (o.off >= file_bytes_ || usable > file_bytes_ - o.off) {
      return damaged(absl::StrFormat("object at %#x of %d bytes beyond the pool's %d bytes",
                                     o.off, usable, file_bytes_));
    }
    shape.bytes_allocated += usable;
    if (type == kv_format::kSegmentType || type == kv_format::kDirectoryType) {
      objects.Add(o.off, static_cast<uint8_t>(type), 0, 0);
      continue;
    }
    if (type != kv_format::kEntryType) {
      return damaged(absl::StrFormat("object at %#x has unknown type %d", o.off, type));
    }
    Entry* e = At<Entry>(o);
    if (usable < sizeof(Entry) || e->key_bytes > kKeyBytesMax ||
        e->value_bytes > kValueBytesMax || EntryBytes(e->key_bytes, e->value_bytes) > usable) {
      return damaged(absl::StrFormat("entry at %#x: sizes (%d, %d) do not fit %d bytes", o.off,
                                     e->key_bytes, e->value_bytes, usable));
    }
    if (e->key_hash != kv_format::KeyHash(KeyOf(e))) {
      return damaged(absl::StrFormat("entry at %#x: key hash mismatch", o.off));
    }
    if (e->pair_hash != kv_format::PairHash(KeyOf(e), ValueOf(e))) {
      return damaged(absl::StrFormat("entry at %#x: pair checksum mismatch", o.off));
    }
    if (!OID_IS_NULL(e->next) && (e->next.pool_uuid_lo != uuid_lo_ || e->next.off == 0)) {
      return damaged(absl::StrFormat("entry at %#x: next {%#x, %#x} is not in this pool",
                                     o.off, e->next.pool_uuid_lo, e->next.off));
    }
    objects.Add(o.off, static_cast<uint8_t>(type), e->next.off,
                static_cast<uint32_t>(e->key_hash));
    keys++;
    state_hash += e->pair_hash;
  }
  if (auto s = objects.Seal(file_bytes_); !s.ok()) return damaged(std::string(s.message()));
  shape.objects = objects.size();

  // The rank of the object `oid` points at, after checking it is an
  // allocated object of `type` in this pool, reached for the first time.
  auto reach = [&](PMEMoid oid, uint64_t type, const char* what) -> absl::StatusOr<uint32_t> {
    const uint32_t i = oid.pool_uuid_lo == uuid_lo_ ? objects.Find(oid.off) : ObjectIndex::kNone;
    if (i == ObjectIndex::kNone || objects.type(i) != type) {
      return damaged(absl::StrFormat("%s {%#x, %#x} is not an allocated object of type %d",
                                     what, oid.pool_uuid_lo, oid.off, type));
    }
    if (!objects.Reach(i)) {
      return damaged(absl::StrFormat("%s at %#x is reachable twice (cycle or shared link)",
                                     what, oid.off));
    }
    return i;
  };
  // An array object of at least `entries` PMEMoids.
  auto array = [&](PMEMoid oid, uint64_t type, uint64_t entries,
                   const char* what) -> absl::StatusOr<const PMEMoid*> {
    auto i = reach(oid, type, what);
    if (!i.ok()) return i.status();
    const size_t usable = pmemobj_alloc_usable_size(oid);
    if (usable < entries * sizeof(PMEMoid)) {
      return damaged(absl::StrFormat("%s at %#x of %d bytes holds fewer than %d entries", what,
                                     oid.off, usable, entries));
    }
    return At<PMEMoid>(oid);
  };
  std::vector<uint32_t> chain;
  // One chain, whose keys must hash to `bucket` of a table of mask + 1
  // buckets.
  auto walk = [&](PMEMoid head, uint64_t mask, uint64_t bucket,
                  const char* table) -> absl::Status {
    chain.clear();
    PMEMoid cur = head;
    while (!OID_IS_NULL(cur)) {
      auto i = reach(cur, kv_format::kEntryType, "entry");
      if (!i.ok()) return i.status();
      // Bucket counts are at most 2^32: the low hash bits decide.
      if ((objects.hash_low(*i) & mask) != bucket) {
        return damaged(absl::StrFormat("entry at %#x is not in its %s bucket %d", cur.off,
                                       table, bucket));
      }
      // A key's hash picks its bucket, so a duplicate would share the chain.
      for (uint32_t other : chain) {
        if (objects.hash_low(other) != objects.hash_low(*i)) continue;
        Entry* a = At<Entry>(PMEMoid{uuid_lo_, objects.offset(other)});
        Entry* b = At<Entry>(cur);
        if (a->key_hash == b->key_hash && KeyOf(a) == KeyOf(b)) {
          return damaged(absl::StrFormat("entry at %#x: duplicate key", cur.off));
        }
      }
      chain.push_back(*i);
      const uint64_t next = objects.next_offset(*i);
      cur = next == 0 ? OID_NULL : PMEMoid{uuid_lo_, next};
    }
    if (!chain.empty()) shape.buckets_used++;
    shape.chain_length_max = std::max<uint64_t>(shape.chain_length_max, chain.size());
    return absl::OkStatus();
  };
  const uint64_t cursor = root_->migrate_cursor;
  // Zero, or the old table's buckets during a resize.
  const uint64_t old_count = Resizing() ? old_.buckets : 0;
  // Walks the buckets [begin, t.buckets) of table `t`. `live(j)`: whether
  // bucket j holds keys (else its segment is absent or it is empty).
  auto walk_table = [&](PMEMoid directory, const Table& t, uint64_t begin,
                        const std::function<bool(uint64_t)>& live,
                        const char* table) -> absl::Status {
    auto dir = array(directory, kv_format::kDirectoryType,
                     kv_format::DirectoryEntries(t.buckets), "bucket directory");
    if (!dir.ok()) return dir.status();
    for (uint64_t s = 0; s < kv_format::DirectoryEntries(t.buckets); ++s) {
      const uint64_t first = s * t.segment_buckets;
      const uint64_t last = first + t.segment_buckets;
      // A segment exists iff it holds buckets at or past `begin` and a
      // live one (a bucket has moved into it). Its first bucket has the
      // smallest old bucket of the segment, so it decides.
      const bool needed = last > begin && live(first);
      if (OID_IS_NULL((*dir)[s])) {
        if (!needed) continue;
        return damaged(absl::StrFormat("%s table: segment %d is missing", table, s));
      }
      if (!needed) {
        return damaged(absl::StrFormat("%s table: segment %d should not exist", table, s));
      }
      auto segment = array((*dir)[s], kv_format::kSegmentType, t.segment_buckets,
                           "bucket segment");
      if (!segment.ok()) return segment.status();
      for (uint64_t j = std::max(first, begin); j < last; ++j) {
        const PMEMoid head = (*segment)[j - first];
        if (!live(j)) {
          if (!OID_IS_NULL(head)) {
            return damaged(absl::StrFormat(
                "%s bucket %d is not empty but its old bucket has not moved (cursor %d)",
                table, j, cursor));
          }
          continue;
        }
        if (auto st = walk(head, t.buckets - 1, j, table); !st.ok()) return st;
      }
    }
    return absl::OkStatus();
  };
  // The table: during a resize only buckets whose old bucket has moved.
  if (auto s = walk_table(root_->directory, table_, 0,
                          [&](uint64_t j) {
                            return old_count == 0 || (j & (old_count - 1)) < cursor;
                          },
                          "new");
      !s.ok()) {
    return s;
  }
  // The old table's live part: buckets from the cursor on. Slots below it
  // are dead, and its segments wholly below it are freed.
  if (Resizing()) {
    if (auto s = walk_table(root_->old_directory, old_, cursor, [](uint64_t) { return true; },
                            "old");
        !s.ok()) {
      return s;
    }
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
  const uint64_t count = root_->bucket_count;
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
                                                          absl::Span<const Op> ops,
                                                          const Epilogue& epilogue) {
  return impl_->ApplyBatch(index, ops, epilogue);
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
