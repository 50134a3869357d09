// The typed keyspace: Redis-like strings, lists, sets and sorted sets in
// an arena inside a libpmemobj pool (arena.h, pmem_arena.h). Keys live in
// a hash map; a list is a deque, a set a hash map, a sorted set a B+tree
// of (score, member) beside a member -> score hash map.
//
// Every mutation runs in ONE arena transaction per log entry, which also
// stores the applied log index: after a crash the pool holds exactly the
// effects of entries [1, AppliedIndex()]. Deterministic: the same batches
// from the same state give byte-identical arenas and the same StateHash().
// Each transaction yields its write set (physical replication).
// Layout: structures/FORMAT.md ("Keyspace"). Not thread-safe (one owner).
#ifndef BLIZZARD_STRUCTURES_KV_STORE_H_
#define BLIZZARD_STRUCTURES_KV_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "structures/op.h"
#include "structures/write_set.h"

namespace blizzard::structures {

class ArenaMemory;

struct StoreOptions {
  std::string path;                    // Pool file (e.g. under /dev/shm).
  uint64_t pool_bytes = 512ull << 20;  // Size when creating.
  uint64_t cluster_id = 0;             // Checked on open.
  uint64_t node_id = 0;
  bool create_if_missing = true;
  // Open walks the whole keyspace (Verify()) and refuses a damaged pool.
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
  // Arena bytes the committed transactions changed: the merged write sets
  // (what physical replication ships), allocator metadata included.
  // Excludes libpmemobj's own undo log.
  uint64_t bytes_written = 0;
  uint64_t ranges_written = 0;
  // Ops answered kOutOfMemoryError because the arena had no block for them
  // (committed batches; for ExecuteOnTop, every batch executed).
  uint64_t ops_out_of_memory = 0;
  // Batches whose epilogue did not fit even with every op undone (see
  // ApplyBatch): their epilogue was not applied.
  uint64_t epilogues_dropped = 0;
};

// Occupancy of the arena's heap (admission control, INFO).
struct MemoryUsage {
  uint64_t used_bytes = 0;      // Blocks in use (headers included).
  uint64_t capacity_bytes = 0;  // What the heap can hold.
};

struct StoreInfo {
  uint32_t layout_version = 0;
  uint64_t cluster_id = 0;
  uint64_t node_id = 0;
  uint64_t pool_bytes = 0;   // Size of the pool file (0 for a simulated arena).
  uint64_t arena_bytes = 0;
  uint64_t heap_bytes = 0;   // Carved from the arena so far.
  uint64_t bucket_count = 0;  // Of the keyspace's hash map.
  bool resizing = false;      // The keyspace's map is doubling.
};

// What Verify() measured on its walk.
struct TableShape {
  uint64_t objects = 0;          // Used arena blocks.
  uint64_t bytes_allocated = 0;  // Their block bytes.
  uint64_t bytes_free = 0;       // On free lists.
  uint64_t strings = 0, lists = 0, sets = 0, zsets = 0;
};

enum class ValueType : uint8_t { kNone = 0, kString = 1, kList = 2, kSet = 3, kZSet = 4 };
// TYPE's reply: "none", "string", "list", "set", "zset".
const char* TypeName(ValueType type);

inline constexpr char kWrongTypeError[] =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
// An op that found the arena full (Redis's reply under maxmemory with the
// noeviction policy, verbatim).
inline constexpr char kOutOfMemoryError[] =
    "OOM command not allowed when used memory > 'maxmemory'.";

struct ScoreBound {
  double value = 0;
  bool exclusive = false;
};

class KvStore {
 public:
  // Errors: NotFound (missing, !create_if_missing), FailedPrecondition
  // (foreign pool: other layout/version/cluster/node), DataLoss (header
  // checksum, Verify()), InvalidArgument (bad options).
  static absl::StatusOr<std::unique_ptr<KvStore>> Open(const StoreOptions& options);
  // A keyspace over any arena backend (tests: SimMemory). Formats a
  // zeroed memory. The memory must outlive the store.
  static absl::StatusOr<std::unique_ptr<KvStore>> OpenMemory(ArenaMemory* memory,
                                                             bool verify = true);
  ~KvStore();

  // Applies the ops of log entry `index` in one transaction that also sets
  // AppliedIndex() = index. `index` must be > AppliedIndex()
  // (FailedPrecondition otherwise). Per-op failures (WRONGTYPE, not an
  // integer) are OpResult errors. An op that cannot allocate (the arena is
  // full) is undone alone, back to a savepoint taken before it, and answers
  // kOutOfMemoryError; the other ops and the index commit. The allocator
  // is deterministic, so every replica fails the same op. InvalidArgument
  // (nothing applied) if an op fails ValidateOp; other errors (the
  // backend's undo log) roll the whole batch back. With `write_set`,
  // returns what changed.
  absl::StatusOr<std::vector<OpResult>> ApplyBatch(uint64_t index, absl::Span<const Op> ops,
                                                   WriteSet* write_set = nullptr);
  // The same with an `epilogue`: called inside the same transaction with
  // the ops' results; the ops it returns are applied after them, results
  // discarded (node/ records client sessions this way, atomically with the
  // ops and the applied index). InvalidArgument (nothing applied) if one
  // fails ValidateOp. If the epilogue's ops do not fit in the arena, every
  // op of the batch is undone and answers kOutOfMemoryError, and the
  // epilogue is called again with those results; if its ops still do not
  // fit, they are undone too and `*epilogue_applied` is false (only the
  // index commits). Deterministic like the rest.
  using Epilogue = std::function<std::vector<Op>(absl::Span<const OpResult> results)>;
  absl::StatusOr<std::vector<OpResult>> ApplyBatch(uint64_t index, absl::Span<const Op> ops,
                                                   const Epilogue& epilogue,
                                                   WriteSet* write_set = nullptr,
                                                   bool* epilogue_applied = nullptr);
  // Physical replication: a write set applied in one transaction (the
  // applied index travels inside it), and the undo of one this store
  // committed (its pre-images). Both re-read the root afterwards.
  absl::Status ApplyWriteSet(const WriteSet& ws, WriteSet* applied = nullptr);
  absl::Status UndoWriteSet(const WriteSet& ws);
  uint64_t ArenaBytes() const;
  // The arena heap's occupancy now (O(1); after write sets were applied,
  // one walk of the free lists: Arena::UsedBytes).
  MemoryUsage Memory() const;

  // Physical replication (node/PHYSICAL.md). The leader's pool holds only
  // committed state; to build log entry `index` it executes `ops` on top
  // of the entries before it that are not applied yet (`unapplied`: the
  // indices AppliedIndex()+1 .. index-1 in order; write_set nullptr for an
  // entry without operations, which only advances the applied index), in
  // ONE transaction that it then aborts. `*ws` gets the changes of `ops`
  // alone (with AppliedIndex() = index), computed on top of the unapplied
  // ones; the results are what applying would answer. The store is
  // unchanged on return. An op that finds the arena full is undone alone
  // and answers kOutOfMemoryError, as in ApplyBatch (it adds nothing to
  // `*ws`). FailedPrecondition if `unapplied` does not chain from
  // AppliedIndex() to `index`; InvalidArgument as ApplyBatch or for a
  // write set that does not fit.
  struct UnappliedEntry {
    uint64_t index = 0;
    const WriteSet* write_set = nullptr;
  };
  absl::StatusOr<std::vector<OpResult>> ExecuteOnTop(uint64_t index,
                                                     absl::Span<const UnappliedEntry> unapplied,
                                                     absl::Span<const Op> ops, WriteSet* ws);
  // The same with a `prologue` and an `epilogue` (node/ runs client
  // sessions this way in physical mode). The prologue is called inside the
  // transaction once the unapplied entries are written, so the store's
  // reads see the state the batch runs on; it returns the ops to execute
  // (they must stay alive until ExecuteOnTop returns); an error from it
  // aborts and is returned. The epilogue is ApplyBatch's, with the same
  // OOM fallback and `*epilogue_applied`; its writes are part of `*ws`.
  using Prologue = std::function<absl::StatusOr<absl::Span<const Op>>()>;
  absl::StatusOr<std::vector<OpResult>> ExecuteOnTop(uint64_t index,
                                                     absl::Span<const UnappliedEntry> unapplied,
                                                     const Prologue& prologue,
                                                     const Epilogue& epilogue, WriteSet* ws,
                                                     bool* epilogue_applied = nullptr);
  // Every replica: applies the write set of committed entry `index` (which
  // carried `ops` operations) in one transaction. The write set is
  // untrusted: unless it leaves a keyspace root with AppliedIndex() ==
  // `index`, nothing is applied and DataLoss (the replica must stop rather
  // than diverge). FailedPrecondition if `index` <= AppliedIndex().
  absl::Status ApplyEntryWriteSet(uint64_t index, const WriteSet& ws, uint64_t ops);

  // Reads (never fail: wrong types read as absent; callers check Type()).
  ValueType Type(std::string_view key) const;
  std::optional<std::string> Get(std::string_view key) const;  // Strings.
  uint64_t Size() const;  // Number of keys.
  uint64_t AppliedIndex() const;
  // Order-independent over keys, covering every type's content. Replicas
  // that applied the same index must agree. O(1).
  uint64_t StateHash() const;
  uint64_t ListLength(std::string_view key) const;
  // Redis's LRANGE/LINDEX index rules (negative from the end, clamped).
  std::vector<std::string> ListRange(std::string_view key, int64_t start, int64_t stop) const;
  std::optional<std::string> ListIndex(std::string_view key, int64_t index) const;
  std::vector<std::string> SetMembers(std::string_view key) const;
  bool SetIsMember(std::string_view key, std::string_view member) const;
  uint64_t SetCard(std::string_view key) const;
  std::optional<double> ZScore(std::string_view key, std::string_view member) const;
  uint64_t ZCard(std::string_view key) const;
  std::vector<std::pair<std::string, double>> ZRange(std::string_view key, int64_t start,
                                                     int64_t stop) const;
  // Members with min <= score <= max (bounds may be exclusive), skipping
  // `offset`, at most `limit` (negative: all).
  std::vector<std::pair<std::string, double>> ZRangeByScore(std::string_view key, ScoreBound min,
                                                            ScoreBound max, uint64_t offset,
                                                            int64_t limit) const;
  // Every key with its type (deterministic order).
  void ForEachKey(const std::function<void(std::string_view key, ValueType type)>& fn) const;
  // Every string key/value (inspector, tests).
  void ForEach(const std::function<void(std::string_view key,
                                        std::string_view value)>& fn) const;
  StoreStats Stats() const;

  // Walks everything: the arena's heap, the keyspace map, every container
  // (structure, counts, the member->score map against the B+tree), every
  // digest and the state hash; every used block owned exactly once.
  // DataLoss naming the first problem.
  absl::Status Verify(TableShape* shape = nullptr) const;
  StoreInfo Info() const;

 private:
  class Impl;
  explicit KvStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace blizzard::structures

#endif  // BLIZZARD_STRUCTURES_KV_STORE_H_
