#include "structures/inspect.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "structures/kv_store.h"
#include "structures/test_util.h"

namespace blizzard::structures {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class DescribeStoreTest : public ::testing::Test {
 protected:
  DescribeStoreTest() : dir_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {
    path_ = dir_.Path("kv.pool");
  }

  void Fill(int keys) {
    StoreOptions o;
    o.path = path_;
    o.pool_bytes = 16ull << 20;
    o.cluster_id = 3;
    o.node_id = 5;
    auto store = KvStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status();
    std::vector<Op> ops;
    for (int i = 0; i < keys; ++i) {
      ops.push_back(Op{OpCode::kSet, {absl::StrCat("key", i), std::string(10 + i, 'v')}, 0, {}});
    }
    ops.push_back(Op{OpCode::kSet, {std::string("bin\0\n", 5), "MARKER-VALUE-42"}, 0, {}});
    ops.push_back(Op{OpCode::kRPush, {"list", "a", "b"}, 0, {}});
    ops.push_back(Op{OpCode::kZAdd, {"zset", "m"}, 0, {1.5}});
    ASSERT_TRUE((*store)->ApplyBatch(42, ops).ok());
  }

  testing::ScratchDir dir_;
  std::string path_;
};

TEST_F(DescribeStoreTest, DescribesHeaderTableAndKeys) {
  Fill(3);
  auto d = DescribeStore(path_, 10);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(*d, HasSubstr("layout version  3\n"));
  EXPECT_THAT(*d, HasSubstr("cluster id      3\n"));
  EXPECT_THAT(*d, HasSubstr("node id         5\n"));
  EXPECT_THAT(*d, HasSubstr("applied index   42\n"));
  EXPECT_THAT(*d, HasSubstr("keys            6\n"));
  EXPECT_THAT(*d, HasSubstr("types           4 strings, 1 lists, 0 sets, 1 sorted sets\n"));
  EXPECT_THAT(*d, HasSubstr("key buckets     8\n"));
  EXPECT_THAT(*d, HasSubstr("verify          OK"));
  EXPECT_THAT(*d, HasSubstr("\"key2\"  string 12 bytes\n"));
  EXPECT_THAT(*d, HasSubstr("\"bin\\x00\\n\"  string 15 bytes\n"));
  EXPECT_THAT(*d, HasSubstr("\"list\"  list 2 elements\n"));
  EXPECT_THAT(*d, HasSubstr("\"zset\"  zset 1 elements\n"));
  EXPECT_THAT(*d, Not(HasSubstr("more")));
  EXPECT_THAT(*d, Not(HasSubstr("resizing")));
}

TEST_F(DescribeStoreTest, DescribesAResizeInProgress) {
  Fill(1100);  // Past 1024 buckets: a doubling from 1024 to 2048 under way.
  auto d = DescribeStore(path_, 0);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(*d, HasSubstr("key buckets     2048 (resizing)\n"));
  EXPECT_THAT(*d, HasSubstr("verify          OK"));
}

TEST_F(DescribeStoreTest, LimitsTheListing) {
  Fill(20);
  auto d = DescribeStore(path_, 2);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(*d, HasSubstr("... 21 more\n"));
}

TEST_F(DescribeStoreTest, ReportsErrors) {
  EXPECT_EQ(DescribeStore(path_, 10).status().code(), absl::StatusCode::kNotFound);
  Fill(3);
  std::string bytes = testing::ReadFile(path_);
  const size_t at = bytes.find("MARKER-VALUE-42");
  ASSERT_NE(at, std::string::npos);
  bytes[at] ^= 1;
  testing::WriteFile(path_, bytes);
  auto d = DescribeStore(path_, 10);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(d.status().message(), HasSubstr("applied index   42"));
  EXPECT_THAT(d.status().message(), HasSubstr("FAILED: "));
  EXPECT_THAT(d.status().message(), HasSubstr("state hash does not match the content"));
}

}  // namespace
}  // namespace blizzard::structures
