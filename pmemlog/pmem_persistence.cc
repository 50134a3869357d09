#include "pmemlog/pmem_persistence.h"

#include <emmintrin.h>  // _mm_stream_si64 (SSE2: every x86-64).
#include <libpmem.h>

#include <cstring>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::pmemlog {

void PmemPersistence::Store(void* dst, const void* src, uint64_t len) {
  ABSL_RAW_CHECK(Contains(dst, len), "store outside the persistent region");
  std::memcpy(dst, src, len);
}

void PmemPersistence::Store64(uint64_t* dst, uint64_t value) {
  ABSL_RAW_CHECK(Contains(dst, sizeof(value)) && reinterpret_cast<uintptr_t>(dst) % 8 == 0,
                 "8-byte store outside the region or unaligned");
  // A single aligned 8-byte store; the atomic builtin keeps the compiler from
  // splitting or tearing it.
  __atomic_store_n(dst, value, __ATOMIC_RELEASE);
}

void PmemPersistence::CopyNoDrain(void* dst, const void* src, uint64_t len) {
  ABSL_RAW_CHECK(Contains(dst, len), "copy outside the persistent region");
  pmem_memcpy_nodrain(dst, src, len);
}

void PmemPersistence::StreamNoDrain(void* dst, const void* src, uint64_t len) {
  ABSL_RAW_CHECK(Contains(dst, len) && reinterpret_cast<uintptr_t>(dst) % 64 == 0 && len % 64 == 0,
                 "streaming copy outside the region or not of whole cache lines");
  pmem_memcpy(dst, src, len, PMEM_F_MEM_NONTEMPORAL | PMEM_F_MEM_NODRAIN);
}

void PmemPersistence::Store64NoDrain(uint64_t* dst, uint64_t value) {
  ABSL_RAW_CHECK(Contains(dst, sizeof(value)) && reinterpret_cast<uintptr_t>(dst) % 8 == 0,
                 "8-byte store outside the region or unaligned");
  // movnti: one aligned 8-byte store, written around the cache.
  _mm_stream_si64(reinterpret_cast<long long*>(dst), static_cast<long long>(value));
}

void PmemPersistence::Flush(const void* addr, uint64_t len) {
  ABSL_RAW_CHECK(Contains(addr, len), "flush outside the persistent region");
  pmem_flush(addr, len);
}

void PmemPersistence::Drain() { pmem_drain(); }

void PmemPersistence::Persist(const void* addr, uint64_t len) {
  ABSL_RAW_CHECK(Contains(addr, len), "persist outside the persistent region");
  pmem_persist(addr, len);
}

}  // namespace blizzard::pmemlog
