// The libpmemobj container: crash-safe creation, and a clear error for every
// kind of file that is not a healthy pmemlog pool.
#include "pmemlog/log_pool.h"

#include <fcntl.h>
#include <libpmemobj.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "pmemlog/log_core.h"
#include "pmemlog/log_format.h"
#include "pmemlog/test_util.h"

namespace blizzard::pmemlog {
namespace {

using ::blizzard::pmemlog::testing::ErrorIs;
using ::blizzard::pmemlog::testing::ShmDir;

constexpr uint64_t kPoolBytes = 16 << 20;
constexpr Identity kId{1, 2};

TEST(LogPoolTest, CreateGivesAlignedMetaAndARingFillingThePool) {
  ShmDir dir("pool_create");
  const std::string path = dir.File("log");
  ASSERT_TRUE(LogPool::Create(path, kPoolBytes, kId).ok());
  EXPECT_NE(access((path + ".creating").c_str(), F_OK), 0);
  absl::StatusOr<std::unique_ptr<LogPool>> pool = LogPool::Open(path);
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->meta_offset() % 64, 0u);
  absl::StatusOr<std::unique_ptr<LogCore>> core =
      LogCore::Open((*pool)->persistence(), (*pool)->meta_offset(), kId);
  ASSERT_TRUE(core.ok()) << core.status();
  const format::Header& h = (*core)->header();
  EXPECT_EQ(h.ring_offset % 64, 0u);
  EXPECT_GT(h.ring_bytes, kPoolBytes * 2 / 3);  // libpmemobj keeps ~4 MiB.
  EXPECT_TRUE((*pool)->CheckRing(h).ok());
  format::Header shifted = h;
  shifted.ring_offset += 4096;
  EXPECT_EQ((*pool)->CheckRing(shifted).code(), absl::StatusCode::kDataLoss);
}

TEST(LogPoolTest, CreateRefusesAnExistingPathAndReplacesAStaleTemporary) {
  ShmDir dir("pool_exists");
  const std::string path = dir.File("log");
  { std::ofstream(path + ".creating") << "left by a crash during creation"; }
  ASSERT_TRUE(LogPool::Create(path, kPoolBytes, kId).ok());
  EXPECT_EQ(LogPool::Create(path, kPoolBytes, kId).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(LogPool::Create(dir.File("no/such/dir/log"), kPoolBytes, kId).code(),
            absl::StatusCode::kNotFound);
}

TEST(LogPoolTest, OpenErrorsAreClear) {
  ShmDir dir("pool_errors");
  EXPECT_TRUE(
      ErrorIs(LogPool::Open(dir.File("missing")).status(), absl::StatusCode::kNotFound, "missing"));
  { std::ofstream(dir.File("junk")) << std::string(1 << 20, 'j'); }
  EXPECT_TRUE(ErrorIs(LogPool::Open(dir.File("junk")).status(),
                      absl::StatusCode::kFailedPrecondition, "not a libpmemobj pool"));
  { std::ofstream(dir.File("empty")); }
  EXPECT_TRUE(ErrorIs(LogPool::Open(dir.File("empty")).status(),
                      absl::StatusCode::kFailedPrecondition, "not a libpmemobj pool"));
  PMEMobjpool* other = pmemobj_create(dir.File("other").c_str(), "blizzard_kv", kPoolBytes, 0600);
  ASSERT_NE(other, nullptr);
  pmemobj_close(other);
  EXPECT_TRUE(ErrorIs(LogPool::Open(dir.File("other")).status(),
                      absl::StatusCode::kFailedPrecondition, "not a pmemlog pool"));
  // A pool of the right layout whose creation never got to the root.
  PMEMobjpool* bare =
      pmemobj_create(dir.File("bare").c_str(), format::kPoolLayout, kPoolBytes, 0600);
  ASSERT_NE(bare, nullptr);
  pmemobj_close(bare);
  EXPECT_TRUE(ErrorIs(LogPool::Open(dir.File("bare")).status(), absl::StatusCode::kDataLoss,
                      "no pmemlog root"));
}

TEST(LogPoolTest, APoolOpenElsewhereIsRefused) {
  ShmDir dir("pool_locked");
  const std::string path = dir.File("log");
  ASSERT_TRUE(LogPool::Create(path, kPoolBytes, kId).ok());
  absl::StatusOr<std::unique_ptr<LogPool>> first = LogPool::Open(path);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(ErrorIs(LogPool::Open(path).status(), absl::StatusCode::kFailedPrecondition,
                      "open in another process"));
  first->reset();
  EXPECT_TRUE(LogPool::Open(path).ok());
}

TEST(LogPoolTest, TruncatedPoolFilesAreDataLoss) {
  ShmDir dir("pool_truncated");
  for (uint64_t cut : {uint64_t{4096}, uint64_t{1} << 20, kPoolBytes - (1 << 20)}) {
    const std::string path = dir.File("log" + std::to_string(cut));
    ASSERT_TRUE(LogPool::Create(path, kPoolBytes, kId).ok());
    ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(kPoolBytes - cut)), 0);
    EXPECT_TRUE(ErrorIs(LogPool::Open(path).status(), absl::StatusCode::kDataLoss,
                        "libpmemobj cannot open"));
  }
}

}  // namespace
}  // namespace blizzard::pmemlog
