#include "consensus/raft_log.h"

#include "gtest/gtest.h"

namespace blizzard::consensus {
namespace {

std::vector<Entry> MakeEntries(Index first, std::vector<Term> terms) {
  std::vector<Entry> out;
  for (size_t i = 0; i < terms.size(); ++i) {
    out.push_back(Entry{terms[i], first + i, EntryType::kNormal, "d"});
  }
  return out;
}

// Persists what the log hands out, as a driver would.
void Persist(RaftLog& log, MemoryStorage& s) {
  std::vector<Entry> e = log.TakeEntriesToPersist();
  ASSERT_TRUE(s.Append(e).ok());
  if (!e.empty()) log.StableTo(e.back().index, e.back().term);
}

TEST(RaftLogTest, ReadsSpanStorageAndUnstable) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(MakeEntries(1, {1, 1, 2})).ok());
  RaftLog log(&s, 0, 0);
  EXPECT_EQ(log.LastIndex(), 3u);
  log.Append(MakeEntries(4, {3, 3}));
  EXPECT_EQ(log.LastIndex(), 5u);
  EXPECT_EQ(log.LastTerm(), 3u);
  EXPECT_EQ(*log.TermAt(0), 0u);
  EXPECT_EQ(*log.TermAt(3), 2u);
  EXPECT_EQ(*log.TermAt(5), 3u);
  EXPECT_EQ(log.TermAt(6).status().code(), absl::StatusCode::kOutOfRange);
  std::vector<Entry> all = log.Slice(1, 6, UINT64_MAX);
  ASSERT_EQ(all.size(), 5u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].index, i + 1);
  // Size-limited: one entry at least, across the storage/unstable seam too.
  EXPECT_EQ(log.Slice(1, 6, 0).size(), 1u);
  EXPECT_EQ(log.Slice(3, 6, 2 * EntrySizeBytes(all[0])).size(), 2u);
  EXPECT_TRUE(log.storage_error().ok());
}

TEST(RaftLogTest, MaybeAppendMatchesTruncatesAndCommits) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(MakeEntries(1, {1, 1, 2, 2})).ok());
  RaftLog log(&s, 1, 0);
  EXPECT_FALSE(log.MaybeAppend(4, 3, 4, {}).has_value());
  EXPECT_FALSE(log.MaybeAppend(5, 2, 4, {}).has_value());
  // Matching entries: nothing changes, commit follows the leader's.
  Index replaced_from = 99;
  std::optional<Index> last = log.MaybeAppend(2, 1, 3, MakeEntries(3, {2}), &replaced_from);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(replaced_from, 0u);
  EXPECT_EQ(*last, 3u);
  EXPECT_EQ(log.committed(), 3u);
  EXPECT_EQ(log.LastIndex(), 4u);
  EXPECT_FALSE(log.HasEntriesToPersist());
  // A conflict at 4 replaces the suffix.
  last = log.MaybeAppend(3, 2, 9, MakeEntries(4, {3, 3}), &replaced_from);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(replaced_from, 4u);
  EXPECT_EQ(*last, 5u);
  EXPECT_EQ(log.committed(), 5u);
  EXPECT_EQ(*log.TermAt(4), 3u);
  Persist(log, s);
  EXPECT_EQ(s.LastIndex(), 5u);
  EXPECT_EQ(*s.TermAt(4), 3u);
  EXPECT_EQ(log.LastIndex(), 5u);
  // Entries past our last one replace nothing.
  last = log.MaybeAppend(5, 3, 5, MakeEntries(6, {3}), &replaced_from);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(replaced_from, 0u);
}

TEST(RaftLogTest, FindConflictByTermSkipsWholeTerms) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(MakeEntries(1, {1, 1, 1, 4, 4, 5, 5, 6, 6, 6})).ok());
  RaftLog log(&s, 0, 0);
  EXPECT_EQ(log.FindConflictByTerm(10, 3), (std::pair<Index, Term>{3, 1}));
  EXPECT_EQ(log.FindConflictByTerm(10, 6), (std::pair<Index, Term>{10, 6}));
  EXPECT_EQ(log.FindConflictByTerm(7, 4), (std::pair<Index, Term>{5, 4}));
  EXPECT_EQ(log.FindConflictByTerm(3, 0), (std::pair<Index, Term>{0, 0}));
  EXPECT_EQ(log.FindConflictByTerm(20, 1), (std::pair<Index, Term>{20, 0}));
}

TEST(RaftLogTest, CommitOnlyInTermAndApplyInChunks) {
  MemoryStorage s;
  RaftLog log(&s, 0, 0);
  log.Append(MakeEntries(1, {1, 2, 2, 2}));
  EXPECT_FALSE(log.MaybeCommit(1, 2)) << "term-1 entry by a term-2 leader";
  EXPECT_TRUE(log.MaybeCommit(3, 2));
  EXPECT_FALSE(log.MaybeCommit(2, 2)) << "commit never goes back";
  ASSERT_TRUE(log.HasEntriesToApply());
  std::vector<Entry> a = log.TakeEntriesToApply(2 * EntrySizeBytes(Entry{}) + 2);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(log.applying(), 2u);
  std::vector<Entry> b = log.TakeEntriesToApply(UINT64_MAX);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].index, 3u);
  EXPECT_FALSE(log.HasEntriesToApply());
  log.AppliedTo(3);
  EXPECT_EQ(log.applied(), 3u);
}

TEST(RaftLogTest, TruncationWhileEntriesAreInFlightToStorage) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(MakeEntries(1, {1})).ok());
  RaftLog log(&s, 0, 0);
  log.Append(MakeEntries(2, {1, 1, 1}));
  std::vector<Entry> handed = log.TakeEntriesToPersist();  // 2..4
  ASSERT_EQ(handed.size(), 3u);
  // Replaced from below the unstable offset before the driver finished.
  log.Append(MakeEntries(2, {2}));
  ASSERT_TRUE(s.Append(handed).ok());
  log.StableTo(4, 1);  // Ignored: entry 4 is gone.
  EXPECT_EQ(log.LastIndex(), 2u);
  EXPECT_EQ(*log.TermAt(2), 2u);
  Persist(log, s);
  EXPECT_EQ(s.LastIndex(), 2u);
  EXPECT_EQ(*s.TermAt(2), 2u);
  EXPECT_EQ(log.LastIndex(), 2u);
}

TEST(RaftLogTest, StableToIgnoresReplacedEntriesOfTheSameIndex) {
  MemoryStorage s;
  RaftLog log(&s, 0, 0);
  log.Append(MakeEntries(1, {1, 1, 1}));
  std::vector<Entry> handed = log.TakeEntriesToPersist();
  // Same indices, newer term: the persisted copies will be stale.
  log.Append(MakeEntries(2, {2, 2}));
  ASSERT_TRUE(s.Append(handed).ok());
  log.StableTo(3, 1);
  EXPECT_EQ(*log.TermAt(3), 2u) << "replaced entries marked stable";
  EXPECT_TRUE(log.HasEntriesToPersist());
  Persist(log, s);
  EXPECT_EQ(*s.TermAt(3), 2u);
  EXPECT_EQ(*log.TermAt(3), 2u);
}

TEST(RaftLogTest, RestoredSnapshotStandsInForStorageUntilInstalled) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(MakeEntries(1, {1, 1, 1})).ok());
  RaftLog log(&s, 1, 1);
  log.Append(MakeEntries(4, {2}));
  std::vector<Entry> handed = log.TakeEntriesToPersist();  // Entry 4.
  const SnapshotMeta meta{10, 3, Membership{{1, 2}, {}}, 5};
  log.Restore(meta);
  EXPECT_EQ(log.FirstIndex(), 11u);
  EXPECT_EQ(log.LastIndex(), 10u);
  EXPECT_EQ(*log.TermAt(10), 3u);
  EXPECT_EQ(log.TermAt(9).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log.committed(), 10u);
  EXPECT_FALSE(log.HasEntriesToApply()) << "the snapshot replaces them";
  EXPECT_EQ(log.applied(), 1u);
  // Entries after the snapshot are unstable on top of it.
  log.Append(MakeEntries(11, {3}));
  EXPECT_EQ(log.LastIndex(), 11u);
  ASSERT_TRUE(log.HasSnapshotToInstall());
  EXPECT_EQ(log.TakeSnapshotToInstall(), meta);
  EXPECT_FALSE(log.HasSnapshotToInstall());
  std::vector<Entry> after = log.TakeEntriesToPersist();
  ASSERT_EQ(after.size(), 1u);
  // The earlier Ready's entry lands, then is acknowledged: ignored.
  ASSERT_TRUE(s.Append(handed).ok());
  log.StableTo(4, 2);
  // The driver installs the snapshot, then persists entry 11.
  ASSERT_TRUE(s.InstallSnapshot(meta, "12345").ok());
  ASSERT_TRUE(s.Append(after).ok());
  log.SnapshotInstalled(10);
  EXPECT_EQ(log.applied(), 10u);
  log.StableTo(11, 3);
  EXPECT_EQ(log.FirstIndex(), 11u);
  EXPECT_EQ(log.LastIndex(), 11u);
  EXPECT_FALSE(log.HasEntriesToPersist());
}

TEST(RaftLogTest, NewerSnapshotReplacesOneBeingInstalled) {
  MemoryStorage s;
  RaftLog log(&s, 0, 0);
  const SnapshotMeta first{5, 1, Membership{{1}, {}}, 0};
  const SnapshotMeta second{8, 2, Membership{{1}, {}}, 0};
  log.Restore(first);
  EXPECT_EQ(log.TakeSnapshotToInstall(), first);
  log.Restore(second);  // Arrives before the first is acknowledged.
  ASSERT_TRUE(s.InstallSnapshot(first, "").ok());
  log.SnapshotInstalled(5);  // Superseded: ignored.
  EXPECT_EQ(log.applied(), 0u);
  EXPECT_EQ(log.LastIndex(), 8u);
  EXPECT_EQ(log.TakeSnapshotToInstall(), second);
  ASSERT_TRUE(s.InstallSnapshot(second, "").ok());
  log.SnapshotInstalled(8);
  EXPECT_EQ(log.applied(), 8u);
  EXPECT_EQ(log.LastIndex(), 8u);
}

}  // namespace
}  // namespace blizzard::consensus
