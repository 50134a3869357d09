// Persistence of byte ranges on a mapped region: the one door through which
// pmemlog's core writes persistent memory. Production goes through libpmem
// (pmem_persistence.h); tests go through a simulated twin
// (sim_persistence.h) that can cut power after any single event.
//
// The model is x86 persistent memory (ADR): a store reaches the media only
// after its cache line is flushed AND a fence drains the flush; until then it
// may or may not survive a power failure, in 8-byte aligned units.
//
// Reads go straight through base(): only writes are events. A write that does
// not go through this interface is, for the simulated twin, never durable.
#ifndef BLIZZARD_PMEMLOG_PERSISTENCE_H_
#define BLIZZARD_PMEMLOG_PERSISTENCE_H_

#include <cstdint>

namespace blizzard::pmemlog {

class Persistence {
 public:
  virtual ~Persistence() = default;

  // The region: [base(), base() + size_bytes()). Every range passed to the
  // methods below must lie inside it (asserted).
  virtual uint8_t* base() const = 0;
  virtual uint64_t size_bytes() const = 0;

  // Ordinary cached stores: durable only after Flush + Drain.
  virtual void Store(void* dst, const void* src, uint64_t len) = 0;
  // One aligned 8-byte store: the unit of failure atomicity. `dst` must be
  // 8-byte aligned.
  virtual void Store64(uint64_t* dst, uint64_t value) = 0;
  // Copy and flush without a fence (pmem_memcpy_nodrain): durable after the
  // next Drain.
  virtual void CopyNoDrain(void* dst, const void* src, uint64_t len) = 0;
  // Non-temporal copy of whole cache lines: `dst` and `len` are multiples of
  // 64 (asserted). The stores bypass the cache, so the old contents of the
  // lines are never read (no read-for-ownership miss on cold memory) and
  // nothing is left to flush: durable after the next Drain.
  virtual void StreamNoDrain(void* dst, const void* src, uint64_t len) = 0;
  // One aligned 8-byte non-temporal store (the unit of failure atomicity),
  // durable after the next Drain. For a word rewritten on every operation:
  // its line was evicted by the previous flush, and an ordinary store would
  // first read it back from memory.
  virtual void Store64NoDrain(uint64_t* dst, uint64_t value) = 0;
  // Starts writing back the cache lines covering [addr, addr + len).
  virtual void Flush(const void* addr, uint64_t len) = 0;
  // Fence: every flush issued before it is durable when it returns.
  virtual void Drain() = 0;
  // Flush + Drain.
  virtual void Persist(const void* addr, uint64_t len) {
    Flush(addr, len);
    Drain();
  }

  // True if [addr, addr + len) lies inside the region.
  bool Contains(const void* addr, uint64_t len) const {
    const uint8_t* p = static_cast<const uint8_t*>(addr);
    return p >= base() && len <= size_bytes() &&
           static_cast<uint64_t>(p - base()) <= size_bytes() - len;
  }
};

}  // namespace blizzard::pmemlog

#endif  // BLIZZARD_PMEMLOG_PERSISTENCE_H_
