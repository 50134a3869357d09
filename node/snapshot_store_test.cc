#include "node/snapshot_store.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace blizzard::node {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

consensus::SnapshotMeta Meta(consensus::Index index, consensus::Term term) {
  consensus::SnapshotMeta m;
  m.index = index;
  m.term = term;
  m.membership.voters = {1, 2, 3};
  m.membership.learners = {4};
  return m;
}

class SnapshotStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/dev/shm/blizzard_snapshot_store_test_" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    // A 3 MiB "pool": mostly zeros, a few scattered non-zero blocks, one
    // run longer than a record.
    pool_.assign(3u << 20, '\0');
    std::mt19937_64 rng(7);
    for (int i = 0; i < 40; ++i) pool_[rng() % pool_.size()] = static_cast<char>(rng() | 1);
    for (size_t i = (1u << 20) - 8192; i < (2u << 20) + 4096; i += 512) pool_[i] = 'x';
    pool_.back() = 'z';
    WriteFile(dir_ + "/data.pool", pool_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<SnapshotStore> OpenStore(const std::string& name = "snaps") {
    auto s = SnapshotStore::Open(dir_ + "/" + name, 7);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  std::string dir_;
  std::string pool_;
};

TEST_F(SnapshotStoreTest, CreateReopenRestoreRoundTrip) {
  consensus::SnapshotMeta taken;
  {
    auto store = OpenStore();
    EXPECT_EQ(store->meta().index, 0u);
    auto meta = store->Create(dir_ + "/data.pool", Meta(10, 2));
    ASSERT_TRUE(meta.ok()) << meta.status();
    taken = *meta;
    EXPECT_GT(taken.bytes, 0u);
    EXPECT_LT(taken.bytes, pool_.size());  // Sparse: zero blocks are not stored.
    EXPECT_EQ(store->meta(), taken);
  }
  auto store = OpenStore();
  EXPECT_EQ(store->meta(), taken);
  ASSERT_TRUE(store->RestorePool(dir_ + "/restored.pool").ok());
  EXPECT_EQ(ReadFile(dir_ + "/restored.pool"), pool_);
  // A newer snapshot replaces the old one and its image.
  auto newer = store->Create(dir_ + "/data.pool", Meta(20, 3));
  ASSERT_TRUE(newer.ok());
  EXPECT_FALSE(store->Create(dir_ + "/data.pool", Meta(20, 3)).ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/snaps/snap-10-2.img"));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/snaps/snap-20-3.img"));
}

// The node writes images on another thread and commits them on its own;
// an image overtaken by an installed snapshot is dropped.
TEST_F(SnapshotStoreTest, WriteImageThenCommitAndOvertakenImages) {
  auto store = OpenStore();
  auto image = SnapshotStore::WriteImage(store->dir(), 7, dir_ + "/data.pool", Meta(10, 2));
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(store->meta().index, 0u);  // Not kept until committed.
  ASSERT_TRUE(store->CommitImage(*image).ok());
  EXPECT_EQ(store->meta(), image->meta);
  EXPECT_EQ(store->stats().created, 1u);
  auto older = SnapshotStore::WriteImage(store->dir(), 7, dir_ + "/data.pool", Meta(5, 1));
  ASSERT_TRUE(older.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store->CommitImage(*older)));
  EXPECT_FALSE(std::filesystem::exists(store->dir() + "/snap-5-1.img"));
  EXPECT_EQ(store->meta().index, 10u);
}

TEST_F(SnapshotStoreTest, ChunksStreamToAnotherStoreAndInstall) {
  auto leader = OpenStore("leader");
  auto meta = leader->Create(dir_ + "/data.pool", Meta(10, 2));
  ASSERT_TRUE(meta.ok());
  EXPECT_TRUE(absl::IsNotFound(leader->ReadChunk(9, 0, 10).status()));
  EXPECT_TRUE(absl::IsOutOfRange(leader->ReadChunk(10, meta->bytes + 1, 10).status()));
  auto follower = OpenStore("follower");
  // Not fully staged yet.
  EXPECT_TRUE(absl::IsFailedPrecondition(follower->CommitStaged(*meta)));
  const uint64_t chunk_bytes = 100000;
  for (uint64_t off = 0; off < meta->bytes; off += chunk_bytes) {
    auto data = leader->ReadChunk(10, off, chunk_bytes);
    ASSERT_TRUE(data.ok());
    consensus::SnapshotChunk c{*meta, off, *data};
    ASSERT_TRUE(follower->Stage(c).ok());
    // A chunk that does not continue the staged bytes is refused.
    if (off > 0) {
      EXPECT_FALSE(follower->Stage(consensus::SnapshotChunk{*meta, off, "x"}).ok());
    }
  }
  ASSERT_TRUE(follower->CommitStaged(*meta).ok());
  EXPECT_EQ(follower->meta(), *meta);
  ASSERT_TRUE(follower->RestorePool(dir_ + "/follower.pool").ok());
  EXPECT_EQ(ReadFile(dir_ + "/follower.pool"), pool_);
  EXPECT_EQ(follower->stats().installed, 1u);
}

TEST_F(SnapshotStoreTest, DamagedFilesAreRefused) {
  consensus::SnapshotMeta meta;
  {
    auto store = OpenStore();
    meta = *store->Create(dir_ + "/data.pool", Meta(10, 2));
  }
  const std::string image_path = dir_ + "/snaps/snap-10-2.img";
  const std::string image = ReadFile(image_path);
  const std::string meta_bytes = ReadFile(dir_ + "/snaps/meta");
  std::mt19937_64 rng(11);
  for (int i = 0; i < 50; ++i) {
    std::string bad = image;
    bad[rng() % bad.size()] ^= static_cast<char>(1 + rng() % 255);
    WriteFile(image_path, bad);
    EXPECT_FALSE(VerifySnapshotImage(image_path, 7).ok()) << i;
    EXPECT_TRUE(absl::IsDataLoss(SnapshotStore::Open(dir_ + "/snaps", 7).status()));
  }
  WriteFile(image_path, image.substr(0, image.size() - 1));
  EXPECT_TRUE(absl::IsDataLoss(SnapshotStore::Open(dir_ + "/snaps", 7).status()));
  WriteFile(image_path, image);
  for (size_t i = 0; i < meta_bytes.size(); i += 3) {
    std::string bad = meta_bytes;
    bad[i] ^= 0x40;
    WriteFile(dir_ + "/snaps/meta", bad);
    EXPECT_FALSE(SnapshotStore::Open(dir_ + "/snaps", 7).ok()) << i;
  }
  WriteFile(dir_ + "/snaps/meta", meta_bytes);
  EXPECT_TRUE(absl::IsFailedPrecondition(SnapshotStore::Open(dir_ + "/snaps", 8).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(VerifySnapshotImage(image_path, 8).status()));
  EXPECT_TRUE(SnapshotStore::Open(dir_ + "/snaps", 7).ok());
}

// The inspector's view: read-only, verifies everything, lists leftovers,
// names the damage.
TEST_F(SnapshotStoreTest, DescribeReportsWithoutChangingTheDirectory) {
  const std::string snaps = dir_ + "/snaps";
  {
    auto store = OpenStore();
    auto none = DescribeSnapshotDir(snaps, 7);
    ASSERT_TRUE(none.ok()) << none.status();
    EXPECT_NE(none->find("status: OK (no snapshot kept)"), std::string::npos) << *none;
    ASSERT_TRUE(store->Create(dir_ + "/data.pool", Meta(10, 2)).ok());
  }
  WriteFile(snaps + "/staging.img", "partial");
  WriteFile(snaps + "/meta.tmp", "garbage");
  for (uint64_t cluster : {uint64_t{7}, uint64_t{0}}) {  // 0: the meta's own cluster.
    auto report = DescribeSnapshotDir(snaps, cluster);
    ASSERT_TRUE(report.ok()) << report.status();
    for (const char* want : {"status: OK\n", "cluster_id: 7\n", "index: 10\n", "term: 2\n",
                             "snap-10-2.img", "verified", "pool_bytes: 3145728\n",
                             "voters: 1 2 3\n", "learners: 4\n", "leftover: meta.tmp",
                             "leftover: staging.img"}) {
      EXPECT_NE(report->find(want), std::string::npos) << want << " in\n" << *report;
    }
  }
  // Nothing was removed.
  EXPECT_TRUE(std::filesystem::exists(snaps + "/staging.img"));
  EXPECT_TRUE(std::filesystem::exists(snaps + "/meta.tmp"));
  auto foreign = DescribeSnapshotDir(snaps, 8);
  EXPECT_TRUE(absl::IsFailedPrecondition(foreign.status()));
  EXPECT_NE(foreign.status().message().find("status: REFUSED"), std::string::npos);
  // A damaged image: the report says CORRUPT and names the file.
  const std::string image_path = snaps + "/snap-10-2.img";
  std::string image = ReadFile(image_path);
  image[image.size() / 2] ^= 0x10;
  WriteFile(image_path, image);
  auto damaged = DescribeSnapshotDir(snaps, 7);
  ASSERT_TRUE(absl::IsDataLoss(damaged.status())) << damaged.status();
  EXPECT_NE(damaged.status().message().find("status: CORRUPT"), std::string::npos);
  EXPECT_NE(damaged.status().message().find("snap-10-2.img"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(image_path));
  EXPECT_TRUE(absl::IsNotFound(DescribeSnapshotDir(dir_ + "/nope", 7).status()));
}

// Crash points of Create and of an install: whatever the last durable
// step, the store reopens with either the old or the new snapshot, and
// leftovers are removed.
TEST_F(SnapshotStoreTest, InterruptedWritesLeaveTheOldSnapshot) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(store->Create(dir_ + "/data.pool", Meta(10, 2)).ok());
    // A newer image written but its meta never committed, a half-written
    // meta, and a staged snapshot.
    std::filesystem::copy_file(dir_ + "/snaps/snap-10-2.img", dir_ + "/snaps/snap-30-4.img");
    WriteFile(dir_ + "/snaps/meta.tmp", "garbage");
    WriteFile(dir_ + "/snaps/staging.img", "partial");
    WriteFile(dir_ + "/snaps/snap-40-4.img.tmp", "partial");
  }
  auto store = OpenStore();
  EXPECT_EQ(store->meta().index, 10u);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/snaps")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 2);  // meta + snap-10-2.img
}

}  // namespace
}  // namespace blizzard::node
