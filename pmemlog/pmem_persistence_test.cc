#include "pmemlog/pmem_persistence.h"

#include <libpmem.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

namespace blizzard::pmemlog {
namespace {

// Writes through every method on a real libpmem mapping of a /dev/shm file,
// unmaps, and maps it again: the bytes must be there. (That libpmem's
// flushes reach the media cannot be observed on DRAM; the crash tests cover
// ordering with the simulated twin.)
TEST(PmemPersistenceTest, WritesThroughLibpmemReachTheFile) {
  const std::string path = absl::StrFormat("/dev/shm/pmemlog_%d_persistence", getpid());
  size_t mapped = 0;
  int is_pmem = 0;
  void* addr = pmem_map_file(path.c_str(), 1 << 16, PMEM_FILE_CREATE, 0600, &mapped, &is_pmem);
  ASSERT_NE(addr, nullptr) << pmem_errormsg();
  EXPECT_TRUE(is_pmem) << "PMEM_IS_PMEM_FORCE=1 is expected in the test env";
  {
    PmemPersistence p(static_cast<uint8_t*>(addr), mapped);
    EXPECT_TRUE(p.Contains(p.base() + 100, 8));
    EXPECT_FALSE(p.Contains(p.base() + mapped - 4, 8));
    const char text[] = "hello pmem";
    p.Store(p.base() + 8, text, sizeof(text));
    p.Persist(p.base() + 8, sizeof(text));
    p.Store64(reinterpret_cast<uint64_t*>(p.base() + 64), 0xfeedfacecafebeefull);
    p.Flush(p.base() + 64, 8);
    p.Drain();
    std::string big(5000, 'x');
    p.CopyNoDrain(p.base() + 1000, big.data(), big.size());
    p.Drain();
  }
  pmem_unmap(addr, mapped);
  addr = pmem_map_file(path.c_str(), 0, 0, 0, &mapped, &is_pmem);
  ASSERT_NE(addr, nullptr) << pmem_errormsg();
  const uint8_t* b = static_cast<const uint8_t*>(addr);
  EXPECT_STREQ(reinterpret_cast<const char*>(b + 8), "hello pmem");
  uint64_t w;
  std::memcpy(&w, b + 64, 8);
  EXPECT_EQ(w, 0xfeedfacecafebeefull);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b + 1000), 5000), std::string(5000, 'x'));
  pmem_unmap(addr, mapped);
  unlink(path.c_str());
}

}  // namespace
}  // namespace blizzard::pmemlog
