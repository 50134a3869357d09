#include "consensus/storage.h"

#include "gtest/gtest.h"

namespace blizzard::consensus {
namespace {

std::vector<Entry> MakeEntries(Index first, std::vector<Term> terms) {
  std::vector<Entry> out;
  for (size_t i = 0; i < terms.size(); ++i) {
    out.push_back(Entry{terms[i], first + i, EntryType::kNormal,
                        std::string(10, 'x')});
  }
  return out;
}

TEST(MemoryStorageTest, EmptyLog) {
  MemoryStorage s;
  EXPECT_EQ(s.FirstIndex(), 1u);
  EXPECT_EQ(s.LastIndex(), 0u);
  EXPECT_EQ(*s.TermAt(0), 0u);
  EXPECT_EQ(s.TermAt(1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(s.Entries(1, 1, 100)->empty());
  EXPECT_EQ(s.Entries(1, 2, 100).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(s.InitialHardState(), HardState{});
  s.SetHardState(HardState{3, 2, 0});
  EXPECT_EQ(s.InitialHardState(), (HardState{3, 2, 0}));
}

TEST(MemoryStorageTest, AppendTruncatesAndRefusesGaps) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(MakeEntries(1, {1, 1, 2, 2})).ok());
  EXPECT_EQ(s.LastIndex(), 4u);
  EXPECT_EQ(*s.TermAt(3), 2u);
  EXPECT_EQ(s.Append(MakeEntries(6, {2})).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(s.Append(MakeEntries(3, {3})).ok());
  EXPECT_EQ(s.LastIndex(), 3u);
  EXPECT_EQ(*s.TermAt(3), 3u);
  EXPECT_EQ(s.Append({Entry{3, 4, EntryType::kNormal, ""},
                      Entry{3, 6, EntryType::kNormal, ""}})
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(s.Append({}).ok());
}

TEST(MemoryStorageTest, EntriesStopAtBytesMaxButReturnOne) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(MakeEntries(1, {1, 1, 1, 1})).ok());
  const uint64_t one = 10 + kEntryOverheadBytes;
  EXPECT_EQ(s.Entries(1, 5, 0)->size(), 1u);
  EXPECT_EQ(s.Entries(1, 5, one)->size(), 1u);
  EXPECT_EQ(s.Entries(1, 5, 2 * one)->size(), 2u);
  EXPECT_EQ(s.Entries(1, 5, 2 * one + 1)->size(), 2u);
  EXPECT_EQ(s.Entries(2, 5, UINT64_MAX)->size(), 3u);
  EXPECT_EQ(s.Entries(2, 5, UINT64_MAX)->front().index, 2u);
  EXPECT_EQ(s.Entries(0, 2, 100).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(s.Entries(3, 2, 100).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(MemoryStorageTest, CompactKeepsTheBoundaryTerm) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(MakeEntries(1, {1, 2, 3, 4})).ok());
  ASSERT_TRUE(s.Compact(3).ok());
  EXPECT_EQ(s.FirstIndex(), 3u);
  EXPECT_EQ(s.LastIndex(), 4u);
  EXPECT_EQ(*s.TermAt(2), 2u);
  EXPECT_EQ(s.TermAt(1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(s.Entries(2, 4, 100).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(s.Append(MakeEntries(2, {2})).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(s.Compact(2).ok());  // No-op.
  EXPECT_EQ(s.Compact(6).code(), absl::StatusCode::kOutOfRange);
  ASSERT_TRUE(s.Compact(5).ok());  // Everything.
  EXPECT_EQ(s.FirstIndex(), 5u);
  EXPECT_EQ(s.LastIndex(), 4u);
  EXPECT_EQ(*s.TermAt(4), 4u);
  ASSERT_TRUE(s.Append(MakeEntries(5, {5})).ok());
  EXPECT_EQ(s.LastIndex(), 5u);
}

TEST(MemoryStorageTest, SnapshotsCreateServeChunksAndInstall) {
  MemoryStorage s;
  EXPECT_EQ(s.LastSnapshot().index, 0u);
  EXPECT_EQ(s.SnapshotChunk(1, 0, 10).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(s.Append(MakeEntries(1, {1, 1, 2, 2})).ok());
  const Membership m{{1, 2, 3}, {}};
  // Must describe an entry of the log, with its term, and a membership.
  EXPECT_EQ(s.CreateSnapshot(SnapshotMeta{5, 2, m, 0}, "x").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.CreateSnapshot(SnapshotMeta{3, 1, m, 0}, "x").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.CreateSnapshot(SnapshotMeta{3, 2, Membership{}, 0}, "x").code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(s.CreateSnapshot(SnapshotMeta{3, 2, m, 99}, "abcdef").ok());
  EXPECT_EQ(s.LastSnapshot(), (SnapshotMeta{3, 2, m, 6}));  // Size fixed.
  EXPECT_EQ(*s.SnapshotChunk(3, 0, 4), "abcd");
  EXPECT_EQ(*s.SnapshotChunk(3, 4, 4), "ef");
  EXPECT_EQ(*s.SnapshotChunk(3, 6, 4), "");
  EXPECT_EQ(s.SnapshotChunk(3, 7, 4).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(s.SnapshotChunk(2, 0, 4).status().code(), absl::StatusCode::kNotFound);
  // Compaction stops at the snapshot; older snapshots are refused.
  EXPECT_EQ(s.Compact(5).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(s.Compact(4).ok());
  EXPECT_EQ(s.CreateSnapshot(SnapshotMeta{2, 1, m, 0}, "x").code(),
            absl::StatusCode::kInvalidArgument);
  // Installing a received snapshot replaces the whole log.
  EXPECT_EQ(s.InstallSnapshot(SnapshotMeta{9, 3, m, 2}, "abc").code(),
            absl::StatusCode::kInvalidArgument);  // Size mismatch.
  EXPECT_EQ(s.InstallSnapshot(SnapshotMeta{1, 1, m, 1}, "a").code(),
            absl::StatusCode::kInvalidArgument);  // Below the compaction.
  ASSERT_TRUE(s.InstallSnapshot(SnapshotMeta{9, 3, m, 2}, "ab").ok());
  EXPECT_EQ(s.FirstIndex(), 10u);
  EXPECT_EQ(s.LastIndex(), 9u);
  EXPECT_EQ(*s.TermAt(9), 3u);
  EXPECT_EQ(s.LastSnapshot().index, 9u);
  EXPECT_EQ(s.snapshot_data(), "ab");
  ASSERT_TRUE(s.Append(MakeEntries(10, {3})).ok());
}

}  // namespace
}  // namespace blizzard::consensus
