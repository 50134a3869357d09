// Persistence over real (or PMEM_IS_PMEM_FORCE-emulated) persistent memory
// through libpmem: cache-line flushes (clwb/clflushopt) and sfence.
#ifndef BLIZZARD_PMEMLOG_PMEM_PERSISTENCE_H_
#define BLIZZARD_PMEMLOG_PMEM_PERSISTENCE_H_

#include <cstdint>

#include "pmemlog/persistence.h"

namespace blizzard::pmemlog {

class PmemPersistence final : public Persistence {
 public:
  // The region must be a persistent-memory mapping that outlives this object.
  PmemPersistence(uint8_t* base, uint64_t size_bytes) : base_(base), size_bytes_(size_bytes) {}

  uint8_t* base() const override { return base_; }
  uint64_t size_bytes() const override { return size_bytes_; }
  void Store(void* dst, const void* src, uint64_t len) override;
  void Store64(uint64_t* dst, uint64_t value) override;
  void CopyNoDrain(void* dst, const void* src, uint64_t len) override;
  void StreamNoDrain(void* dst, const void* src, uint64_t len) override;
  void Store64NoDrain(uint64_t* dst, uint64_t value) override;
  void Flush(const void* addr, uint64_t len) override;
  void Drain() override;
  void Persist(const void* addr, uint64_t len) override;

 private:
  uint8_t* const base_;
  const uint64_t size_bytes_;
};

}  // namespace blizzard::pmemlog

#endif  // BLIZZARD_PMEMLOG_PMEM_PERSISTENCE_H_
