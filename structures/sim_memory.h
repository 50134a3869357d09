// ArenaMemory in DRAM with an explicit undo log, where every persistent
// store is a crash point: the simulated twin of PmemArenaPool. Used by unit
// tests (fast, no pool files) and by crash tests, which capture the image a
// restart would recover at every store of a transaction.
//
// Fault model: a crash keeps every store made before it (as a killed
// process on tmpfs does) and may tear the data store in flight (half of it
// written). The undo log is appended entry first, count second, so a torn
// entry is never counted; the count and the active flag are 8-byte
// stores (atomic on x86-64). Recovery rolls an active transaction back by
// writing the counted entries' pre-images newest first.
#ifndef BLIZZARD_STRUCTURES_SIM_MEMORY_H_
#define BLIZZARD_STRUCTURES_SIM_MEMORY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "structures/arena.h"

namespace blizzard::structures {

class SimMemory : public ArenaMemory {
 public:
  explicit SimMemory(uint64_t bytes) : bytes_(bytes, 0) {}

  const uint8_t* data() const override { return bytes_.data(); }
  uint64_t size() const override { return bytes_.size(); }
  absl::Status Begin() override;
  absl::Status Snapshot(uint64_t offset, uint64_t bytes) override;
  void Store(uint64_t offset, const void* src, uint64_t bytes) override;
  absl::Status Commit() override;
  void Abort() override;

  // Called at every crash point, before the store it precedes (and in the
  // middle of a torn data store). The hook may call RecoveredImage().
  void set_crash_hook(std::function<void()> hook) { hook_ = std::move(hook); }
  // What a restart would find now, after recovery.
  std::vector<uint8_t> RecoveredImage() const;
  // Restart from an image (no transaction active).
  void Reset(const std::vector<uint8_t>& image);
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  uint64_t crash_points() const { return crash_points_; }
  // Undo entries of the open (or last) transaction: one per Snapshot.
  uint64_t undo_entries() const { return log_count_; }

 private:
  void Point() {
    crash_points_++;
    if (hook_) hook_();
  }
  struct Undo {
    uint64_t offset;
    std::string pre;
  };
  std::vector<uint8_t> bytes_;
  std::vector<Undo> log_;      // Entries; only the first log_count_ count.
  uint64_t log_count_ = 0;     // "Persistent" 8-byte word.
  bool active_ = false;        // "Persistent" 8-byte word: a transaction is open.
  // Volatile: the bytes this transaction's snapshots cover, as disjoint
  // [start, end) merged; Store checks the ArenaMemory contract against it.
  std::map<uint64_t, uint64_t> covered_;
  std::function<void()> hook_;
  uint64_t crash_points_ = 0;
};

}  // namespace blizzard::structures

#endif  // BLIZZARD_STRUCTURES_SIM_MEMORY_H_
