#include "node/log_storage.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace blizzard::node {
namespace {

using consensus::Entry;
using consensus::EntryType;

class LogStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/dev/shm/blizzard_log_storage_test_" + std::to_string(getpid());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<pmemlog::PmemLog> OpenLog() {
    pmemlog::LogOptions o;
    o.path = dir_ + "/log.pool";
    o.pool_bytes = 16u << 20;
    o.cluster_id = 7;
    o.node_id = 1;
    auto log = pmemlog::PmemLog::Open(o);
    EXPECT_TRUE(log.ok()) << log.status();
    return std::move(*log);
  }

  std::string dir_;
};

TEST_F(LogStorageTest, PersistThenReadBackAcrossReopen) {
  {
    auto log = OpenLog();
    PmemLogStorage storage(log.get());
    EXPECT_EQ(storage.FirstIndex(), 1u);
    EXPECT_EQ(storage.LastIndex(), 0u);
    std::vector<Entry> entries = {{1, 1, EntryType::kNoop, ""},
                                  {1, 2, EntryType::kNormal, "a"},
                                  {2, 3, EntryType::kNormal, "bb"}};
    ASSERT_TRUE(storage.Persist(entries, consensus::HardState{2, 3, 2}).ok());
  }
  auto log = OpenLog();
  PmemLogStorage storage(log.get());
  EXPECT_EQ(storage.InitialHardState(), (consensus::HardState{2, 3, 2}));
  EXPECT_EQ(storage.LastIndex(), 3u);
  EXPECT_EQ(*storage.TermAt(3), 2u);
  EXPECT_EQ(*storage.TermAt(0), 0u);
  auto got = storage.Entries(1, 4, 1 << 20);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0].type, EntryType::kNoop);
  EXPECT_EQ((*got)[2].data, "bb");
}

TEST_F(LogStorageTest, ConflictingEntriesReplaceTheSuffix) {
  auto log = OpenLog();
  PmemLogStorage storage(log.get());
  ASSERT_TRUE(storage
                  .Persist({{1, 1, EntryType::kNormal, "x"},
                            {1, 2, EntryType::kNormal, "y"},
                            {1, 3, EntryType::kNormal, "z"}},
                           std::nullopt)
                  .ok());
  ASSERT_TRUE(storage.Persist({{2, 2, EntryType::kNormal, "Y"}}, std::nullopt).ok());
  EXPECT_EQ(storage.LastIndex(), 2u);
  EXPECT_EQ(*storage.TermAt(2), 2u);
  EXPECT_EQ((*storage.Entries(2, 3, 100))[0].data, "Y");
}

TEST_F(LogStorageTest, EntriesRespectsByteLimitButReturnsOne) {
  auto log = OpenLog();
  PmemLogStorage storage(log.get());
  ASSERT_TRUE(storage
                  .Persist({{1, 1, EntryType::kNormal, std::string(100, 'a')},
                            {1, 2, EntryType::kNormal, std::string(100, 'b')}},
                           std::nullopt)
                  .ok());
  EXPECT_EQ(storage.Entries(1, 3, 10)->size(), 1u);
  EXPECT_EQ(storage.Entries(1, 3, 250)->size(), 2u);
  EXPECT_FALSE(storage.Entries(1, 4, 250).ok());
}

}  // namespace
}  // namespace blizzard::node
