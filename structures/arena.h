// The arena: one flat byte range of persistent memory with a deterministic
// allocator whose metadata lives inside it, and transactions in which every
// change goes through ONE write API. Each write (a) makes the range
// restorable (the backend's undo log) and (b) is recorded, so a committed
// transaction yields its write set: the merged byte ranges it changed, with
// post-images (what physical replication ships) and pre-images (what a
// leader needs to undo a speculatively applied, never-committed write set).
//
// Offsets, never pointers: offset 0 is the arena header, so 0 means "null".
// The same operations from the same arena bytes give the same arena bytes
// (no addresses, clocks or randomness), so a follower that applies a write
// set ends byte-identical to the leader.
//
// Backends (ArenaMemory): PmemArenaPool (a libpmemobj pool and its
// transactions, pmem_arena.h) and SimMemory (DRAM with an explicit undo log
// where every store is a crash point, sim_memory.h). Structures are written
// once against Arena. Layout: structures/FORMAT.md ("Arena").
// Not thread-safe (one owner).
#ifndef BLIZZARD_STRUCTURES_ARENA_H_
#define BLIZZARD_STRUCTURES_ARENA_H_

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/internal/raw_logging.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "structures/line_table.h"
#include "structures/write_set.h"

namespace blizzard::structures {

// Where an arena's bytes live and what makes a transaction over them
// failure-atomic. Contract: between Begin() and Commit()/Abort(), every
// Store() is preceded by a Snapshot() covering it; after a crash, the
// backend's recovery restores every snapshotted range of an unfinished
// transaction (so the arena holds the state before it).
class ArenaMemory {
 public:
  virtual ~ArenaMemory() = default;
  virtual const uint8_t* data() const = 0;
  virtual uint64_t size() const = 0;
  virtual absl::Status Begin() = 0;
  // Makes [offset, offset + bytes) restorable. May fail (undo log full).
  virtual absl::Status Snapshot(uint64_t offset, uint64_t bytes) = 0;
  // Only into bytes some Snapshot of this transaction covered (Arena
  // snapshots a range once and then stores into it many times).
  virtual void Store(uint64_t offset, const void* src, uint64_t bytes) = 0;
  // Durable on return. On failure the transaction is rolled back.
  virtual absl::Status Commit() = 0;
  // Restores every snapshotted range; durable on return.
  virtual void Abort() = 0;
};

namespace arena_format {
inline constexpr uint64_t kMagic = 0x414e45524154425aull;  // "ZBTARENA" (LE)
inline constexpr uint32_t kVersion = 1;
inline constexpr uint64_t kHeaderSeed = 0x426c7a4172656e61ull;  // "anerAzlB"
// Size classes: block sizes 32, 48, 64, 96, 128, 192, ... (2^k and
// 1.5 * 2^k), header included; waste below 1/3 of a block.
inline constexpr uint32_t kClassCount = 42;
inline constexpr uint64_t BlockBytes(uint32_t c) {
  return (c % 2 == 0 ? 32ull : 48ull) << (c / 2);
}
inline constexpr uint64_t kBlockHeaderBytes = 8;
inline constexpr uint64_t kAllocBytesMax = BlockBytes(kClassCount - 1) - kBlockHeaderBytes;
inline constexpr uint16_t kBlockMagic = 0xb10c;
inline constexpr uint8_t kBlockUsed = 1;
inline constexpr uint8_t kBlockFree = 2;

struct Header {
  uint64_t magic;
  uint32_t version;
  uint32_t class_count;
  uint64_t arena_bytes;
  uint64_t heap_offset;
  uint64_t checksum;  // XXH3(kHeaderSeed) of the 32 bytes above.
  uint64_t bump;      // End of the carved part of the heap.
  uint64_t free_heads[kClassCount];  // Payload offset of a free block, 0 = none.
};
static_assert(sizeof(Header) == 48 + 8 * kClassCount);

struct BlockHeader {
  uint16_t magic;  // kBlockMagic
  uint8_t size_class;
  uint8_t state;  // kBlockUsed or kBlockFree
  uint32_t reserved;
};
static_assert(sizeof(BlockHeader) == kBlockHeaderBytes);

// The owner's root area (the keyspace's counters and its map).
inline constexpr uint64_t kRootOffset = 512;
inline constexpr uint64_t kRootBytes = 256;
inline constexpr uint64_t kHeapOffset = 1024;
inline constexpr uint64_t kArenaBytesMin = 64u << 10;
// Writes up to this many bytes are snapshotted by whole 64-byte lines,
// remembered for the rest of the transaction (Arena::Write).
inline constexpr uint64_t kSnapshotLineBytes = 64;
inline constexpr uint64_t kSnapshotLinesBytesMax = 1024;
static_assert(sizeof(Header) <= kRootOffset);
}  // namespace arena_format

struct ArenaStats {
  uint64_t transactions = 0;  // Committed.
  uint64_t bytes_written = 0;  // Of committed write sets (merged ranges).
  uint64_t ranges_written = 0;
};

struct HeapShape {
  uint64_t blocks_used = 0;
  uint64_t blocks_free = 0;
  uint64_t bytes_used = 0;   // Block bytes (headers included) of used blocks.
  uint64_t bytes_free = 0;   // On free lists.
  uint64_t heap_bytes = 0;   // Carved so far (bump - heap start).
  uint64_t arena_bytes = 0;
};

class Arena {
 public:
  // Writes a fresh header and an empty heap in one transaction.
  static absl::Status Format(ArenaMemory* memory);

  // O(1) checks of an existing arena's header (magic, version, checksum,
  // size, bump, free heads in range): DataLoss / FailedPrecondition.
  // CheckHeap() checks the rest.
  static absl::StatusOr<std::unique_ptr<Arena>> Attach(ArenaMemory* memory);

  uint64_t size() const { return size_; }
  bool Contains(uint64_t offset, uint64_t bytes) const {
    return offset <= size_ && bytes <= size_ - offset;
  }
  // Read access. Out-of-range reads are bugs or damage that Verify() must
  // have caught: assertion.
  const uint8_t* At(uint64_t offset, uint64_t bytes) const {
    ABSL_RAW_CHECK(Contains(offset, bytes), "arena read out of range");
    return memory_->data() + offset;
  }
  std::string_view Bytes(uint64_t offset, uint64_t bytes) const {
    return {reinterpret_cast<const char*>(At(offset, bytes)), bytes};
  }
  template <class T>
  T Load(uint64_t offset) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    std::memcpy(&v, At(offset, sizeof(T)), sizeof(T));
    return v;
  }

  // --- Transactions -------------------------------------------------------
  // One at a time. A failure inside (arena full, backend error) makes the
  // transaction sticky-failed: later writes are ignored, Commit() aborts
  // and returns the first error, unless RollbackTo() a savepoint clears
  // an arena-full failure (below).
  absl::Status Begin();
  bool in_tx() const { return in_tx_; }
  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }
  void Fail(absl::Status s) {
    if (status_.ok()) status_ = std::move(s);
  }

  // THE write API: snapshot (undo) + record + store. The backend snapshot
  // is taken once per transaction for each 64-byte line of the arena that
  // small writes touch (whole lines: the allocator's and structures' headers
  // are rewritten by every op of a batch, and each libpmemobj snapshot costs
  // a range-tree lookup and an undo-log append); writes over
  // kSnapshotLinesBytesMax are snapshotted exactly, and not remembered.
  void Write(uint64_t offset, const void* src, uint64_t bytes);
  template <class T>
  void Put(uint64_t offset, const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    Write(offset, &v, sizeof(T));
  }
  void Zero(uint64_t offset, uint64_t bytes);
  // Writes only the span between the first and last byte where `now`
  // differs from `old` (the bytes at `offset`): small write sets for
  // structures that edit a node in a local copy.
  template <class T>
  void PutChanged(uint64_t offset, const T& old, const T& now) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* a = reinterpret_cast<const uint8_t*>(&old);
    const auto* b = reinterpret_cast<const uint8_t*>(&now);
    size_t lo = 0, hi = sizeof(T);
    while (lo < hi && a[lo] == b[lo]) ++lo;
    while (hi > lo && a[hi - 1] == b[hi - 1]) --hi;
    if (lo < hi) Write(offset + lo, b + lo, hi - lo);
  }

  // A block of at least `bytes` usable bytes (contents unspecified): its
  // payload offset, or 0 with the transaction failed (ResourceExhausted).
  uint64_t Alloc(uint64_t bytes);
  // Allocates and zeroes.
  uint64_t AllocZeroed(uint64_t bytes);
  void Free(uint64_t offset);
  // Usable bytes of a used block (asserts it is one).
  uint64_t UsableBytes(uint64_t offset) const;
  // The same for untrusted offsets (verifiers): 0 unless `offset` is the
  // payload of a used block inside the carved heap.
  uint64_t BlockUsable(uint64_t offset) const;

  // --- Savepoints ------------------------------------------------------------
  // Inside a transaction, a point to roll back to: what one operation of a
  // batch may undo without losing the batch (a deterministic per-op "out of
  // memory": every replica's arena fails the same Alloc the same way).
  struct Savepoint {
    size_t records = 0;
    size_t pre_bytes = 0;
    bool free_known = false;
    uint64_t free_bytes = 0;
  };
  Savepoint Mark() const;
  // Writes back the pre-images of every write since `sp`, newest first
  // (each through the backend's Snapshot + Store: a crash in the middle
  // recovers the state before the transaction, like any crash inside it),
  // forgets those writes (the write set and the counts will not hold them)
  // and clears an allocator failure, so the transaction goes on as if they
  // had never been made. Allowed when ok() or out_of_memory(); a backend
  // error during the rollback leaves the transaction failed (not OOM).
  void RollbackTo(const Savepoint& sp);
  // The transaction failed because Alloc could not find a block (the arena
  // is full, or the size is beyond every class): a function of the arena's
  // bytes, the same on every replica. False for backend errors (undo log).
  bool out_of_memory() const { return !status_.ok() && out_of_memory_; }

  // --- Occupancy (admission control, INFO) ---------------------------------
  // Bytes the heap may hold (the arena minus header and owner root).
  uint64_t CapacityBytes() const { return size_ - arena_format::kHeapOffset; }
  // Block bytes in use: carved heap minus the blocks on free lists. Kept
  // up to date by Alloc/Free, aborts and rollbacks; after raw writes
  // (ApplyWriteSet, UndoWriteSet, WritePostImages: physical replication)
  // the free lists are walked again on the next call (O(free blocks)).
  uint64_t UsedBytes() const;

  // Commits; with `out`, also returns the write set (merged ranges with
  // pre- and post-images). On failure the transaction is rolled back.
  absl::Status Commit(WriteSet* out = nullptr);
  void Abort();

  // --- Physical replication -------------------------------------------------
  // Applies an (already decoded, validated) write set in one transaction;
  // `out` gets the write set as applied here (with this arena's
  // pre-images, so it can be undone). InvalidArgument if it does not fit.
  absl::Status ApplyWriteSet(const WriteSet& ws, WriteSet* out = nullptr);
  // Writes the pre-images of a write set this arena committed (Commit's or
  // ApplyWriteSet's `out`) in one transaction: the state before it, byte
  // for byte, provided nothing committed since.
  absl::Status UndoWriteSet(const WriteSet& ws);
  // Inside a transaction: writes the post-images of `ws` (recorded like any
  // write). InvalidArgument, nothing written, if a range does not fit.
  absl::Status WritePostImages(const WriteSet& ws);
  // Inside a transaction: forgets what was recorded so far, so that
  // Commit()'s write set holds only the writes from here on, while the
  // backend still undoes everything on Abort(). Physical replication's
  // leader uses it to execute a batch on top of not-yet-applied write sets
  // and keep only the batch's own changes.
  void ResetRecording();
  // Inside a transaction: the write set recorded so far (as Commit() would
  // return it), or the transaction's error. The transaction stays open
  // (the leader then aborts it).
  absl::Status RecordedWriteSet(WriteSet* out) const;

  // Walks every block from the heap start to the bump pointer, checks
  // headers and free lists (each free block on its class list exactly
  // once, no cycles), and calls `used` for every used block (payload
  // offset). DataLoss naming the first problem.
  absl::Status CheckHeap(const std::function<void(uint64_t)>& used, HeapShape* shape) const;

  ArenaStats stats() const { return stats_; }
  arena_format::Header header() const { return Load<arena_format::Header>(0); }

 private:
  explicit Arena(ArenaMemory* memory) : memory_(memory), size_(memory->size()) {}

  // Snapshots what [offset, offset + bytes) needs (above) and, if
  // `written`, notes those bytes as written (for CountWritten); false with
  // the transaction failed if the backend refused.
  bool EnsureSnapshot(uint64_t offset, uint64_t bytes, bool written);
  // Rebuilds the written-byte masks from the records (after a savepoint
  // rollback or ResetRecording dropped some).
  void RecountWritten();
  // Bytes and merged ranges the records cover (logical mode's Commit: the
  // counts without building a write set): from the line masks, or by
  // merging the records if a write was too large for the line table.
  void CountWritten(uint64_t* bytes, uint64_t* ranges);

  // The allocator (FORMAT.md section 4). Pops a free block of class `c`
  // (its block offset, 0 if the list is empty); pushes block `block` as a
  // free block of class `c`.
  uint64_t PopFree(uint32_t c);
  void PushFree(uint64_t block, uint32_t c);
  // When neither the free list nor the uncarved heap can serve class `c`:
  // pops a free block of the smallest larger class that has one, keeps its
  // first BlockBytes(c) bytes (the whole block, `*got` = its class, when
  // only 16 bytes would be left) and frees the rest as blocks of the
  // largest classes that fit. 0 if no larger class has a free block.
  uint64_t SplitLarger(uint32_t c, uint32_t* got);

  struct Record {
    uint64_t offset;
    uint64_t bytes;
    uint64_t pre_at;  // Into pre_.
  };
  // The records merged into sorted, disjoint, non-adjacent [start, end).
  std::vector<std::pair<uint64_t, uint64_t>> MergedRanges() const;
  void BuildWriteSet(WriteSet* out) const;

  // Walks the free lists (bounded by the heap's size: damage stops the
  // walk, it never loops).
  uint64_t WalkFreeBytes() const;

  ArenaMemory* memory_;
  uint64_t size_;
  bool in_tx_ = false;
  absl::Status status_;
  bool out_of_memory_ = false;  // status_ came from Alloc.
  // Block bytes on the free lists, when known (volatile, derived from the
  // arena's bytes); the values at Begin() restore it on Abort().
  mutable bool free_known_ = false;
  mutable uint64_t free_bytes_ = 0;
  bool free_known_at_begin_ = false;
  uint64_t free_bytes_at_begin_ = 0;
  std::vector<Record> records_;
  std::string pre_;
  // 64-byte lines (offset / 64) the backend has snapshotted in this
  // transaction, never shrinking within one (a savepoint rollback keeps the
  // backend's snapshots too), with the bytes of each that the records
  // wrote; big_writes_: a record over kSnapshotLinesBytesMax (not in it).
  LineTable lines_;
  bool big_writes_ = false;
  ArenaStats stats_;
};

}  // namespace blizzard::structures

#endif  // BLIZZARD_STRUCTURES_ARENA_H_
