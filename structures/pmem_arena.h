// PmemArenaPool: the arena's real backend, a libpmemobj pool holding a
// root object (identity header, the arena's PMEMoid) and ONE large object,
// the arena. libpmemobj only provides the mapping, the failure-atomic
// transaction (its undo log: pmemobj_tx_xadd_range_direct) and recovery on
// open; allocation inside the arena is ours (arena.h), deterministic and
// visible to the write set. Layout: structures/FORMAT.md ("Arena pool").
#ifndef BLIZZARD_STRUCTURES_PMEM_ARENA_H_
#define BLIZZARD_STRUCTURES_PMEM_ARENA_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "structures/arena.h"

struct pmemobjpool;

namespace blizzard::structures {

struct PoolOptions {
  std::string path;
  uint64_t pool_bytes = 512ull << 20;  // When creating.
  uint64_t cluster_id = 0;             // Checked on open.
  uint64_t node_id = 0;
  bool create_if_missing = true;
  bool check_identity = true;  // false: accept any cluster/node (inspector).
  // Accept this cluster's pool stamped with another node id and re-stamp
  // it with node_id in one transaction (an installed snapshot).
  bool adopt_node_id = false;
};

struct PoolIdentity {
  uint32_t layout_version = 0;
  uint64_t cluster_id = 0;
  uint64_t node_id = 0;
  uint64_t pool_bytes = 0;  // File size.
};

// Pool bytes left to libpmemobj (metadata, and the undo log of a
// transaction, which holds a copy of every range it changes: a 16 MiB
// value needs 16 MiB of it): a quarter of the pool plus 8 MiB; the arena
// gets the rest.
uint64_t ArenaBytesForPool(uint64_t pool_bytes);

class PmemArenaPool : public ArenaMemory {
 public:
  // Errors: NotFound (missing, !create_if_missing); FailedPrecondition
  // (not a pmemobj pool, another layout, bad magic, another version or
  // cluster/node, in use); DataLoss (damaged pmemobj pool, header
  // checksum, bad root fields); InvalidArgument (options). A new pool is
  // built at <path>.creating and renamed into place.
  static absl::StatusOr<std::unique_ptr<PmemArenaPool>> Open(const PoolOptions& options);
  ~PmemArenaPool() override;

  const uint8_t* data() const override { return base_; }
  uint64_t size() const override { return bytes_; }
  absl::Status Begin() override;
  absl::Status Snapshot(uint64_t offset, uint64_t bytes) override;
  void Store(uint64_t offset, const void* src, uint64_t bytes) override;
  absl::Status Commit() override;
  void Abort() override;

  const PoolIdentity& identity() const { return identity_; }

 private:
  static absl::Status Create(const PoolOptions& options);
  PmemArenaPool(pmemobjpool* pop, uint8_t* base, uint64_t bytes, PoolIdentity identity)
      : pop_(pop), base_(base), bytes_(bytes), identity_(identity) {}
  pmemobjpool* pop_;
  uint8_t* base_;
  uint64_t bytes_;
  PoolIdentity identity_;
};

}  // namespace blizzard::structures

#endif  // BLIZZARD_STRUCTURES_PMEM_ARENA_H_
