// A persistent key-value store (a hash map) in a libpmemobj pool.
//
// Every mutation runs in ONE pmemobj transaction per log entry, which also
// stores the applied log index: after a crash the pool holds exactly the
// effects of entries [1, AppliedIndex()]. Deterministic: the same batches
// applied from the same state give the same content and StateHash().
// Pool layout: structures/FORMAT.md. Not thread-safe (one owner).
#ifndef BLIZZARD_STRUCTURES_KV_STORE_H_
#define BLIZZARD_STRUCTURES_KV_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "structures/op.h"

namespace blizzard::structures {

struct StoreOptions {
  std::string path;                    // Pool file (e.g. under /dev/shm).
  uint64_t pool_bytes = 512ull << 20;  // Size when creating.
  uint64_t cluster_id = 0;             // Checked on open.
  uint64_t node_id = 0;
  bool create_if_missing = true;
  // Added for tests, operators and the inspector:
  // Buckets of a new pool (a power of two, >= 16). The table doubles when
  // keys exceed buckets, incrementally: a few buckets move per batch.
  uint64_t initial_bucket_count = 1024;
  // Open walks the whole pool (Verify()) and refuses a damaged pool. O(n):
  // ~1.6 µs of CPU and ~25 bytes of memory per key here; README.md.
  bool verify_on_open = true;
  // false: accept any cluster/node id (the pool inspector only).
  bool check_identity = true;
  // Accept a pool of this cluster stamped with another node id (a snapshot
  // of another replica's pool installed here: node/SNAPSHOT.md) and
  // re-stamp it with node_id, in one transaction. The cluster id is still
  // checked.
  bool adopt_node_id = false;
};

struct StoreStats {
  uint64_t transactions = 0;
  uint64_t ops_applied = 0;
  // Pool bytes the committed transactions changed: undo-logged ranges
  // (which may include a few unchanged bytes, e.g. an entry's key between
  // its header and its value, logged as one range) plus newly allocated
  // objects. Excludes PMDK's undo log and allocator metadata. For
  // NVM-bytes-per-op comparisons.
  uint64_t bytes_written = 0;
  // Added: table doublings started, and how many of them had to finish
  // the previous resize at once (its pacing fell behind; only tables
  // below 64 buckets can).
  uint64_t resizes_started = 0;
  uint64_t resizes_finished_at_once = 0;
};

// Identity and shape of an open pool. O(1).
struct StoreInfo {
  uint32_t layout_version = 0;
  uint64_t cluster_id = 0;
  uint64_t node_id = 0;
  uint64_t bucket_count = 0;  // Of the table (the new one during a resize).
  uint64_t pool_bytes = 0;    // Size of the pool file.
  // Added: the incremental resize. Buckets of the old table while a resize
  // is in progress (bucket_count / 2), else 0; and how many of them have
  // moved to the new table.
  uint64_t old_bucket_count = 0;
  uint64_t migrate_cursor = 0;
};

// What Verify() measured on its walk.
struct TableShape {
  uint64_t buckets_used = 0;      // Non-empty buckets.
  uint64_t chain_length_max = 0;
  uint64_t objects = 0;           // pmemobj objects (entries, directories, segments).
  uint64_t bytes_allocated = 0;   // Usable bytes of those objects.
};

class KvStore {
 public:
  // Errors: NotFound (missing, !create_if_missing), FailedPrecondition
  // (foreign pool: other layout/version/cluster/node), DataLoss (header
  // checksum fails), InvalidArgument (bad options).
  static absl::StatusOr<std::unique_ptr<KvStore>> Open(const StoreOptions& options);
  ~KvStore();

  // Applies the ops of log entry `index` in one transaction that also sets
  // AppliedIndex() = index. `index` must be > AppliedIndex()
  // (FailedPrecondition otherwise: never applied twice). An empty `ops`
  // just advances the applied index. Per-op failures (INCRBY on a
  // non-integer) are OpResult errors, not a failed Status; ResourceExhausted
  // if the pool is full (the transaction is rolled back, nothing applied).
  // InvalidArgument (nothing applied) if an op fails ValidateOp.
  // `epilogue` (optional): called inside the same transaction with the
  // ops' results; the ops it returns are applied after them, results
  // discarded (node/ records client sessions this way, atomically with
  // the ops and the applied index). InvalidArgument (nothing applied) if
  // one fails ValidateOp.
  using Epilogue = std::function<std::vector<Op>(absl::Span<const OpResult> results)>;
  absl::StatusOr<std::vector<OpResult>> ApplyBatch(uint64_t index,
                                                   absl::Span<const Op> ops,
                                                   const Epilogue& epilogue = nullptr);

  std::optional<std::string> Get(std::string_view key) const;
  uint64_t Size() const;  // Number of keys.
  uint64_t AppliedIndex() const;
  // Order-independent hash of the logical content (every key and value).
  // Replicas that applied the same index must agree.
  uint64_t StateHash() const;
  // Visits every key/value (unspecified order). Inspector and tests.
  void ForEach(const std::function<void(std::string_view key,
                                        std::string_view value)>& fn) const;
  StoreStats Stats() const;

  // Added: walks every object and checks the table against itself: each
  // entry is an allocated object of the entry type, in the bucket its key
  // hashes to (during a resize: in the old or the new table, as the
  // migrate cursor says), with correct key and pair hashes; no duplicate
  // keys; every object reachable exactly once (no leaks, no cycles); the
  // key count and the state hash equal the walk's. DataLoss naming the
  // first problem found. O(n) time, ~12 bytes of memory per object.
  absl::Status Verify(TableShape* shape = nullptr) const;
  StoreInfo Info() const;

 private:
  class Impl;
  explicit KvStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace blizzard::structures

#endif  // BLIZZARD_STRUCTURES_KV_STORE_H_
