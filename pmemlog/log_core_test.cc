// Unit tests of every LogCore method and error, on the simulated twin. Every
// test that changes the log also recovers it from the persisted-only image
// (what a power failure right after the call would leave) and compares.
#include "pmemlog/log_core.h"

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "pmemlog/log_format.h"
#include "pmemlog/sim_persistence.h"
#include "pmemlog/test_util.h"

namespace blizzard::pmemlog {
namespace {

using ::blizzard::pmemlog::testing::DiffLog;
using ::blizzard::pmemlog::testing::LogModel;
using ::blizzard::pmemlog::testing::MakeBatch;
using ::blizzard::pmemlog::testing::MakeEntry;
using ::blizzard::pmemlog::testing::NewSimLog;
using ::blizzard::pmemlog::testing::OpenSimImage;
using ::blizzard::pmemlog::testing::SimLog;

constexpr uint64_t kRing = 64 << 10;

class LogCoreTest : public ::testing::Test {
 protected:
  LogCoreTest() : l_(NewSimLog(kRing)) {}
  LogCore& log() { return *l_.log; }

  // Appends to both the log and the model.
  void Append(const std::vector<LogEntry>& batch) {
    ASSERT_TRUE(log().Append(batch).ok());
    model_.Append(batch);
  }
  // The live log and its recovery from the durable bytes both hold model_.
  void ExpectModel() {
    EXPECT_EQ(DiffLog(log(), model_), "");
    absl::StatusOr<SimLog> reopened =
        OpenSimImage(l_.sim->CrashImage(CrashMode::kPersistedOnly), kRing);
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    EXPECT_EQ(DiffLog(*reopened->log, model_), "");
    EXPECT_EQ(reopened->log->BytesUsed(), log().BytesUsed());
  }

  SimLog l_;
  LogModel model_;
};

TEST_F(LogCoreTest, NewLogIsEmpty) {
  EXPECT_EQ(log().FirstIndex(), 1u);
  EXPECT_EQ(log().LastIndex(), 0u);
  EXPECT_EQ(*log().TermAt(0), 0u);
  EXPECT_EQ(log().TermAt(1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log().Read(1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log().Read(0).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log().GetHardState(), HardState{});
  EXPECT_EQ(log().BytesUsed(), 0u);
  EXPECT_EQ(log().BytesCapacity(), kRing - format::kTailSlackBytes);
  ExpectModel();
}

TEST_F(LogCoreTest, AppendsEveryPayloadSizeAndReadsBack) {
  uint64_t index = 1;
  for (uint64_t bytes : {0, 1, 7, 8, 9, 255, 256, 257, 1000, 4095, 4096, 5000}) {
    Append({MakeEntry(index++, 1, bytes)});
  }
  Append(MakeBatch(index, 20, 2, 33));
  EXPECT_EQ(log().LastIndex(), index + 19);
  EXPECT_EQ(*log().TermAt(index + 19), 2u);
  ExpectModel();
}

TEST_F(LogCoreTest, OneBatchCostsTwoFences) {
  const LogStats before = log().Stats();
  Append(MakeBatch(1, 10, 1, 100));
  const LogStats after = log().Stats();
  EXPECT_EQ(after.fences - before.fences, 2u);  // Records, then the tail.
  EXPECT_EQ(after.appends - before.appends, 1u);
  EXPECT_EQ(after.entries_appended - before.entries_appended, 10u);
  EXPECT_EQ(after.bytes_persisted - before.bytes_persisted, 10 * format::RecordBytes(100) + 8);
  EXPECT_EQ(log().BytesUsed(), 10 * format::RecordBytes(100));
}

TEST_F(LogCoreTest, EmptyAppendIsANoOp) {
  const uint64_t events = l_.sim->events();
  EXPECT_TRUE(log().Append({}).ok());
  EXPECT_EQ(l_.sim->events(), events);
}

TEST_F(LogCoreTest, AppendRejectsBadBatches) {
  Append(MakeBatch(1, 5, 2, 10));
  const uint64_t events = l_.sim->events();
  auto code = [&](const std::vector<LogEntry>& batch) { return log().Append(batch).code(); };
  EXPECT_EQ(code(MakeBatch(7, 1, 2, 10)), absl::StatusCode::kInvalidArgument);  // Gap.
  std::vector<LogEntry> holey = MakeBatch(6, 3, 2, 10);
  holey[2].index = 9;
  EXPECT_EQ(code(holey), absl::StatusCode::kInvalidArgument);                   // Not contiguous.
  EXPECT_EQ(code(MakeBatch(6, 1, 1, 10)), absl::StatusCode::kInvalidArgument);  // Term < 2.
  std::vector<LogEntry> falling = MakeBatch(6, 2, 3, 10);
  falling[1].term = 2;
  EXPECT_EQ(code(falling), absl::StatusCode::kInvalidArgument);  // Term falls inside.
  EXPECT_EQ(code({MakeEntry(6, 2, format::kPayloadBytesMax + 1)}),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(std::vector<LogEntry>(format::kBatchEntriesMax + 1, MakeEntry(6, 2, 0))),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({MakeEntry(6, 2, kRing)}), absl::StatusCode::kInvalidArgument);  // Never fits.
  ASSERT_TRUE(log().CompactPrefix(3).ok());
  model_.CompactPrefix(3);
  EXPECT_EQ(code(MakeBatch(2, 1, 2, 10)), absl::StatusCode::kInvalidArgument);  // Compacted.
  EXPECT_GT(l_.sim->events(), events);  // Only the compaction wrote.
  ExpectModel();
}

TEST_F(LogCoreTest, FullLogIsResourceExhaustedAndUnchanged) {
  uint64_t index = 1;
  while (true) {
    const absl::Status s = log().Append(MakeBatch(index, 4, 1, 1000));
    if (!s.ok()) {
      EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
      break;
    }
    model_.Append(MakeBatch(index, 4, 1, 1000));
    index += 4;
  }
  ExpectModel();
  // Compaction frees space for more.
  ASSERT_TRUE(log().CompactPrefix(index - 8).ok());
  model_.CompactPrefix(index - 8);
  Append(MakeBatch(index, 4, 1, 1000));
  ExpectModel();
}

TEST_F(LogCoreTest, ConflictingAppendReplacesTheSuffix) {
  Append(MakeBatch(1, 10, 1, 50));
  Append(MakeBatch(6, 3, 2, 70, /*salt=*/9));  // Replaces 6..10 with 6..8.
  EXPECT_EQ(log().LastIndex(), 8u);
  EXPECT_EQ(*log().TermAt(6), 2u);
  ExpectModel();
  Append(MakeBatch(1, 2, 3, 10));  // Replaces everything.
  EXPECT_EQ(log().LastIndex(), 2u);
  ExpectModel();
}

TEST_F(LogCoreTest, TruncateSuffix) {
  Append(MakeBatch(1, 10, 1, 20));
  EXPECT_TRUE(log().TruncateSuffix(11).ok());  // Beyond the end: no-op.
  EXPECT_TRUE(log().TruncateSuffix(8).ok());
  model_.TruncateSuffix(8);
  EXPECT_EQ(log().LastIndex(), 7u);
  ExpectModel();
  ASSERT_TRUE(log().CompactPrefix(4).ok());
  model_.CompactPrefix(4);
  EXPECT_EQ(log().TruncateSuffix(3).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(log().TruncateSuffix(4).ok());  // Everything left.
  model_.TruncateSuffix(4);
  EXPECT_EQ(log().LastIndex(), 3u);
  EXPECT_EQ(log().BytesUsed(), 0u);
  ExpectModel();
  Append(MakeBatch(4, 2, 2, 5));
  ExpectModel();
}

TEST_F(LogCoreTest, CompactPrefixKeepsTheTermBeforeTheFirstEntry) {
  std::vector<LogEntry> batch = MakeBatch(1, 10, 1, 20);
  for (LogEntry& e : batch) e.term = e.index;  // Terms 1..10.
  Append(batch);
  EXPECT_TRUE(log().CompactPrefix(1).ok());  // No-op.
  EXPECT_TRUE(log().CompactPrefix(5).ok());
  model_.CompactPrefix(5);
  EXPECT_EQ(log().FirstIndex(), 5u);
  EXPECT_EQ(*log().TermAt(4), 4u);
  EXPECT_EQ(log().TermAt(3).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log().Read(4).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(log().CompactPrefix(3).ok());  // Older: no-op.
  EXPECT_EQ(log().CompactPrefix(12).code(), absl::StatusCode::kInvalidArgument);
  ExpectModel();
  EXPECT_TRUE(log().CompactPrefix(11).ok());  // Everything.
  model_.CompactPrefix(11);
  EXPECT_EQ(log().LastIndex(), 10u);
  EXPECT_EQ(*log().TermAt(10), 10u);
  EXPECT_EQ(log().BytesUsed(), 0u);
  ExpectModel();
}

TEST_F(LogCoreTest, ResetStartsAfterASnapshot) {
  Append(MakeBatch(1, 10, 1, 20));
  ASSERT_TRUE(log().CompactPrefix(5).ok());
  model_.CompactPrefix(5);
  EXPECT_EQ(log().Reset(2, 1).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(log().Reset(100, 7).ok());
  model_.Reset(100, 7);
  EXPECT_EQ(log().FirstIndex(), 101u);
  EXPECT_EQ(log().LastIndex(), 100u);
  EXPECT_EQ(*log().TermAt(100), 7u);
  ExpectModel();
  EXPECT_EQ(log().Append(MakeBatch(101, 1, 6, 1)).code(), absl::StatusCode::kInvalidArgument);
  Append(MakeBatch(101, 3, 7, 30));
  ExpectModel();
  ASSERT_TRUE(log().Reset(100, 7).ok());  // Exactly the compaction point: allowed.
  model_.Reset(100, 7);
  ExpectModel();
}

TEST_F(LogCoreTest, HardState) {
  ASSERT_TRUE(log().SetHardState({3, 2, 0}).ok());
  model_.hard_state = {3, 2, 0};
  ExpectModel();
  const uint64_t events = l_.sim->events();
  EXPECT_TRUE(log().SetHardState({3, 2, 0}).ok());  // Unchanged: no write.
  EXPECT_EQ(l_.sim->events(), events);
  EXPECT_EQ(log().SetHardState({2, 2, 0}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(log().SetHardState({3, 1, 0}).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(log().SetHardState({3, 2, 9}).ok());  // Commit moves.
  ASSERT_TRUE(log().SetHardState({4, 0, 9}).ok());  // New term, no vote yet...
  ASSERT_TRUE(log().SetHardState({4, 5, 9}).ok());  // ...then a vote.
  model_.hard_state = {4, 5, 9};
  ExpectModel();
  // Hard state and compaction share the slots: neither clobbers the other.
  Append(MakeBatch(1, 4, 4, 8));
  ASSERT_TRUE(log().CompactPrefix(3).ok());
  model_.CompactPrefix(3);
  ASSERT_TRUE(log().SetHardState({5, 1, 2}).ok());
  model_.hard_state = {5, 1, 2};
  ExpectModel();
}

TEST_F(LogCoreTest, RingIsReusedOverManyLaps) {
  uint64_t index = 1;
  uint64_t bytes = 0;
  for (int step = 0; step < 400; ++step) {
    const uint64_t size = (step * 977) % 3000;
    Append(MakeBatch(index, 3, 1 + step / 50, size, step));
    index += 3;
    bytes += 3 * format::RecordBytes(size);
    if (log().BytesUsed() > kRing / 2) {
      const uint64_t upto = log().LastIndex() - 2;
      ASSERT_TRUE(log().CompactPrefix(upto).ok());
      model_.CompactPrefix(upto);
    }
    if (step % 50 == 0) ExpectModel();
  }
  EXPECT_GT(bytes, 10 * kRing);  // Many laps, records wrapping the ring end.
  ExpectModel();
}

// Batches are written in whole cache lines (log_core.cc): one that starts
// mid-line rewrites the line's earlier bytes, which belong to the previous
// batch, from a DRAM copy; after recovery or a truncation the copy is
// re-read from the ring. Every earlier entry must survive each of these.
TEST_F(LogCoreTest, BatchesStartingMidLineKeepThePreviousBytes) {
  uint64_t index = 1;
  for (int step = 0; step < 60; ++step) {
    const uint64_t size = (step * 13) % 90;  // Records of 32..120 bytes, any alignment.
    Append(MakeBatch(index, 1 + step % 3, 1, size, step));
    index = log().LastIndex() + 1;
    ExpectModel();
  }
  // Truncate to a mid-line record boundary, then append over it.
  for (uint64_t from : {log().LastIndex() - 1, log().LastIndex() - 4}) {
    ASSERT_TRUE(log().TruncateSuffix(from).ok());
    model_.TruncateSuffix(from);
    Append(MakeBatch(from, 2, 2, 17, from));
    ExpectModel();
  }
  // Recover (the copy of the tail's line is gone), then keep appending.
  absl::StatusOr<SimLog> reopened =
      OpenSimImage(l_.sim->CrashImage(CrashMode::kPersistedOnly), kRing);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  l_ = std::move(*reopened);
  Append(MakeBatch(log().LastIndex() + 1, 3, 2, 5, 99));
  ExpectModel();
}

// When the ring is nearly full the line after the batch's end can hold the
// head's live bytes; the batch must then write exactly its own bytes.
TEST(LogCoreFullRingTest, FillingUpToTheHeadKeepsItsBytes) {
  constexpr uint64_t kSmallRing = format::kRingBytesMin;
  for (uint64_t head_entries = 1; head_entries < 12; ++head_entries) {
    SimLog l = NewSimLog(kSmallRing, head_entries);
    LogModel model;
    // Move the head to a mid-line offset: records of 72 bytes.
    std::vector<LogEntry> first = MakeBatch(1, head_entries, 1, 40);
    ASSERT_TRUE(l.log->Append(first).ok());
    model.Append(first);
    ASSERT_TRUE(l.log->CompactPrefix(head_entries).ok());
    model.CompactPrefix(head_entries);
    // Fill with ever smaller records until not even an empty one fits.
    for (uint64_t size = 56;;) {
      std::vector<LogEntry> one = MakeBatch(l.log->LastIndex() + 1, 1, 1, size, size);
      if (l.log->BytesUsed() + format::RecordBytes(size) > l.log->BytesCapacity()) {
        if (size == 0) break;
        size -= 8;
        continue;
      }
      ASSERT_TRUE(l.log->Append(one).ok());
      model.Append(one);
    }
    EXPECT_GT(l.log->BytesUsed() + format::kCacheLineBytes, l.log->BytesCapacity());
    EXPECT_EQ(DiffLog(*l.log, model), "") << head_entries;
    absl::StatusOr<SimLog> reopened =
        OpenSimImage(l.sim->CrashImage(CrashMode::kPersistedOnly), kSmallRing);
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    EXPECT_EQ(DiffLog(*reopened->log, model), "") << head_entries;
  }
}

TEST_F(LogCoreTest, ReadDetectsDamageAfterRecovery) {
  Append(MakeBatch(1, 3, 1, 100));
  // Damage entry 2's payload behind the log's back.
  const uint64_t offset = format::RecordBytes(100) + format::kRecordHeaderBytes + 10;
  l_.sim->base()[testing::kSimRingOffset + offset] ^= 0x20;
  const absl::StatusOr<LogEntry> r = log().Read(2);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("entry 2"), std::string::npos) << r.status();
  EXPECT_TRUE(log().Read(1).ok());
  EXPECT_TRUE(log().Read(3).ok());
}

TEST(LogCoreOpenTest, ChecksIdentityUnlessToldNotTo) {
  std::unique_ptr<SimPersistence> sim = testing::FormattedSim(kRing);
  EXPECT_TRUE(LogCore::Open(sim.get(), 0, Identity{7, 3}).ok());
  EXPECT_TRUE(LogCore::Open(sim.get(), 0, std::nullopt).ok());
  EXPECT_EQ(LogCore::Open(sim.get(), 0, Identity{8, 3}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(LogCore::Open(sim.get(), 0, Identity{7, 4}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(LogCoreOpenTest, FormatRejectsLayoutsThatDoNotFit) {
  SimPersistence sim({8192, 1, 0.0});
  auto format = [&](RegionLayout l) { return LogCore::Format(&sim, l, {}).code(); };
  EXPECT_EQ(format({0, 256, 4096}), absl::StatusCode::kOk);
  EXPECT_EQ(format({0, 4096, 8192}), absl::StatusCode::kInvalidArgument);  // Past the end.
  EXPECT_EQ(format({0, 128, 4096}), absl::StatusCode::kInvalidArgument);   // Overlaps meta.
  EXPECT_EQ(format({32, 256, 4096}), absl::StatusCode::kInvalidArgument);  // Unaligned meta.
  EXPECT_EQ(format({0, 256, 4000}), absl::StatusCode::kInvalidArgument);   // Ring size.
  EXPECT_EQ(format({0, 256, 2048}), absl::StatusCode::kInvalidArgument);   // Too small.
}

}  // namespace
}  // namespace blizzard::pmemlog
