// PmemLog on real libpmemobj pools in /dev/shm: every method and error of the
// public API, recovery across reopen, corruption of each part of a pool file
// (each a clear error), and a quick append-latency probe (printed, never
// asserted).
#include "pmemlog/pmem_log.h"

#include <libpmemobj.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "pmemlog/log_core.h"
#include "pmemlog/log_format.h"
#include "pmemlog/log_pool.h"
#include "pmemlog/test_util.h"

namespace blizzard::pmemlog {
namespace {

using ::blizzard::pmemlog::testing::DiffLog;
using ::blizzard::pmemlog::testing::ErrorIs;
using ::blizzard::pmemlog::testing::FlipFileByte;
using ::blizzard::pmemlog::testing::LogModel;
using ::blizzard::pmemlog::testing::MakeBatch;
using ::blizzard::pmemlog::testing::MakeEntry;
using ::blizzard::pmemlog::testing::ShmDir;

constexpr uint64_t kPoolBytes = 16 << 20;

LogOptions Options(const std::string& path) {
  LogOptions o;
  o.path = path;
  o.pool_bytes = kPoolBytes;
  o.cluster_id = 11;
  o.node_id = 2;
  return o;
}

std::unique_ptr<PmemLog> MustOpen(const LogOptions& o) {
  absl::StatusOr<std::unique_ptr<PmemLog>> log = PmemLog::Open(o);
  EXPECT_TRUE(log.ok()) << log.status();
  return log.ok() ? std::move(*log) : nullptr;
}

TEST(PmemLogTest, OptionsAreValidated) {
  ShmDir dir("options");
  LogOptions o = Options("");
  EXPECT_EQ(PmemLog::Open(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options(dir.File("log"));
  o.pool_bytes = format::kPoolBytesMin - 1;
  EXPECT_EQ(PmemLog::Open(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.pool_bytes = format::kPoolBytesMax + 1;
  EXPECT_EQ(PmemLog::Open(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options(dir.File("log"));
  o.create_if_missing = false;
  EXPECT_TRUE(ErrorIs(PmemLog::Open(o).status(), absl::StatusCode::kNotFound, "does not exist"));
}

TEST(PmemLogTest, EveryMethodAndRecoveryAcrossReopen) {
  ShmDir dir("methods");
  const LogOptions o = Options(dir.File("log"));
  LogModel model;
  {
    std::unique_ptr<PmemLog> log = MustOpen(o);
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(DiffLog(*log, model), "");
    EXPECT_GT(log->BytesCapacity(), kPoolBytes / 2);
    for (uint64_t i = 0; i < 20; ++i) {
      const std::vector<LogEntry> batch = MakeBatch(1 + 5 * i, 5, 1 + i / 4, 100 * i);
      ASSERT_TRUE(log->Append(batch).ok());
      model.Append(batch);
    }
    const std::vector<LogEntry> conflict = MakeBatch(90, 3, 7, 64, 1);
    ASSERT_TRUE(log->Append(conflict).ok());
    model.Append(conflict);
    ASSERT_TRUE(log->TruncateSuffix(92).ok());
    model.TruncateSuffix(92);
    ASSERT_TRUE(log->CompactPrefix(30).ok());
    model.CompactPrefix(30);
    ASSERT_TRUE(log->SetHardState({7, 2, 80}).ok());
    model.hard_state = {7, 2, 80};
    EXPECT_EQ(log->Read(29).status().code(), absl::StatusCode::kOutOfRange);
    EXPECT_EQ(log->TermAt(92).status().code(), absl::StatusCode::kOutOfRange);
    EXPECT_EQ(log->Append(MakeBatch(95, 1, 7, 1)).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(DiffLog(*log, model), "");
    const LogStats stats = log->Stats();
    EXPECT_EQ(stats.appends, 21u);
    EXPECT_EQ(stats.entries_appended, 103u);
    EXPECT_EQ(stats.fences, 21 * 2 + 1 /*conflict*/ + 1 + 1 + 1);
  }
  {
    std::unique_ptr<PmemLog> log = MustOpen(o);
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(DiffLog(*log, model), "");
    ASSERT_TRUE(log->Reset(200, 8).ok());
    model.Reset(200, 8);
    ASSERT_TRUE(log->Append(MakeBatch(201, 2, 8, 10)).ok());
    model.Append(MakeBatch(201, 2, 8, 10));
  }
  std::unique_ptr<PmemLog> log = MustOpen(o);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(DiffLog(*log, model), "");
}

TEST(PmemLogTest, FillCompactRefillAcrossLaps) {
  ShmDir dir("laps");
  LogOptions o = Options(dir.File("log"));
  o.pool_bytes = format::kPoolBytesMin;  // Smallest pool: a ring of ~4 MiB.
  std::unique_ptr<PmemLog> log = MustOpen(o);
  ASSERT_NE(log, nullptr);
  const uint64_t capacity = log->BytesCapacity();
  uint64_t next = 1;
  uint64_t written = 0;
  int exhausted = 0;
  while (written < 3 * capacity) {
    const std::vector<LogEntry> batch = MakeBatch(next, 8, 1, 30000, next);
    const absl::Status s = log->Append(batch);
    if (s.code() == absl::StatusCode::kResourceExhausted) {
      ++exhausted;
      ASSERT_TRUE(log->CompactPrefix(log->LastIndex() - 7).ok());
      continue;
    }
    ASSERT_TRUE(s.ok()) << s;
    next += 8;
    written += 8 * format::RecordBytes(30000);
  }
  EXPECT_GE(exhausted, 2);
  const uint64_t first = log->FirstIndex();
  const uint64_t last = log->LastIndex();
  log.reset();
  log = MustOpen(o);
  ASSERT_NE(log, nullptr);
  ASSERT_EQ(log->FirstIndex(), first);
  ASSERT_EQ(log->LastIndex(), last);
  for (uint64_t i = first; i <= last; ++i) {
    absl::StatusOr<LogEntry> e = log->Read(i);
    ASSERT_TRUE(e.ok()) << e.status();
    const uint64_t batch_first = i - (i - 1) % 8;
    EXPECT_EQ(*e, MakeEntry(i, 1, 30000, batch_first));
  }
}

TEST(PmemLogTest, ForeignClusterOrNodeIsRefused) {
  ShmDir dir("identity");
  const LogOptions o = Options(dir.File("log"));
  ASSERT_NE(MustOpen(o), nullptr);
  LogOptions other = o;
  other.cluster_id = 12;
  EXPECT_TRUE(ErrorIs(PmemLog::Open(other).status(), absl::StatusCode::kFailedPrecondition,
                      "cluster 11, not cluster 12"));
  other = o;
  other.node_id = 3;
  EXPECT_TRUE(ErrorIs(PmemLog::Open(other).status(), absl::StatusCode::kFailedPrecondition,
                      "node 2, not node 3"));
}

// Where things are inside a pool file.
struct Geometry {
  uint64_t root_offset = 0;
  uint64_t meta_offset = 0;
  uint64_t ring_offset = 0;
};

Geometry GeometryOf(const std::string& path) {
  absl::StatusOr<std::unique_ptr<LogPool>> pool = LogPool::Open(path);
  ABSL_RAW_CHECK(pool.ok(), "cannot open the pool to measure it");
  format::Header h;
  std::memcpy(&h, (*pool)->persistence()->base() + (*pool)->meta_offset(), sizeof(h));
  const uint64_t meta_offset = (*pool)->meta_offset();
  pool->reset();
  PMEMobjpool* pop = pmemobj_open(path.c_str(), format::kPoolLayout);
  ABSL_RAW_CHECK(pop != nullptr, "cannot open the pool to find its root");
  const uint64_t root_offset = pmemobj_root(pop, format::kRootBytes).off;
  pmemobj_close(pop);
  return Geometry{root_offset, meta_offset, h.ring_offset};
}

class PmemLogCorruptionTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kPayload = 200;

  PmemLogCorruptionTest() : dir_("corruption"), options_(Options(dir_.File("log"))) {
    std::unique_ptr<PmemLog> log = MustOpen(options_);
    ABSL_RAW_CHECK(log != nullptr && log->Append(MakeBatch(1, 10, 3, kPayload)).ok(), "setup");
    ABSL_RAW_CHECK(log->SetHardState({3, 1, 4}).ok(), "setup");
    log.reset();
    geometry_ = GeometryOf(options_.path);
  }
  uint64_t RecordOffset(uint64_t index) const {
    return geometry_.ring_offset + (index - 1) * format::RecordBytes(kPayload);
  }
  absl::Status Reopen() { return PmemLog::Open(options_).status(); }

  ShmDir dir_;
  LogOptions options_;
  Geometry geometry_;
};

TEST_F(PmemLogCorruptionTest, IntactPoolOpens) { EXPECT_TRUE(Reopen().ok()); }

TEST_F(PmemLogCorruptionTest, PayloadBitFlip) {
  FlipFileByte(options_.path, RecordOffset(6) + format::kRecordHeaderBytes + 150, 0x04);
  EXPECT_TRUE(
      ErrorIs(Reopen(), absl::StatusCode::kDataLoss, "entry 6 at log offset 1160: checksum"));
}

TEST_F(PmemLogCorruptionTest, EntryHeaderBitFlip) {
  FlipFileByte(options_.path, RecordOffset(9) + 8, 0x01);  // The term.
  EXPECT_TRUE(ErrorIs(Reopen(), absl::StatusCode::kDataLoss, "entry 9"));
}

TEST_F(PmemLogCorruptionTest, TailWordBitFlip) {
  FlipFileByte(options_.path, geometry_.meta_offset + 64 + 1, 0x02);  // 512 bytes back.
  EXPECT_TRUE(ErrorIs(Reopen(), absl::StatusCode::kDataLoss, "tail word"));
}

TEST_F(PmemLogCorruptionTest, HeaderBitFlip) {
  FlipFileByte(options_.path, geometry_.meta_offset + 40, 0x80);  // ring_bytes.
  EXPECT_TRUE(ErrorIs(Reopen(), absl::StatusCode::kDataLoss, "header: checksum mismatch"));
}

TEST_F(PmemLogCorruptionTest, AnotherFormatVersion) {
  {
    absl::StatusOr<std::unique_ptr<LogPool>> pool = LogPool::Open(options_.path);
    ASSERT_TRUE(pool.ok());
    Persistence* p = (*pool)->persistence();
    format::Header h;
    std::memcpy(&h, p->base() + geometry_.meta_offset, sizeof(h));
    h.format_version = 1;  // A pool of the previous format (FORMAT.md section 8).
    h.checksum = format::HeaderChecksum(h);
    p->Store(p->base() + geometry_.meta_offset, &h, sizeof(h));
    p->Persist(p->base() + geometry_.meta_offset, sizeof(h));
  }
  EXPECT_TRUE(ErrorIs(Reopen(), absl::StatusCode::kFailedPrecondition,
                      "format version 1; this build reads version 2"));
}

TEST_F(PmemLogCorruptionTest, DamagedRingPointerInTheRoot) {
  FlipFileByte(options_.path, geometry_.root_offset + 8 + 1, 0x40);  // ring_oid.off.
  EXPECT_TRUE(ErrorIs(Reopen(), absl::StatusCode::kDataLoss, "ring"));
}

TEST_F(PmemLogCorruptionTest, TruncatedPoolFile) {
  ASSERT_EQ(truncate(options_.path.c_str(), kPoolBytes / 2), 0);
  EXPECT_TRUE(ErrorIs(Reopen(), absl::StatusCode::kDataLoss, "truncated"));
}

// A quick number, not a benchmark (bench/ owns that): per-call latency of
// Append on an emulated-pmem pool in /dev/shm for a few entry sizes.
TEST(PmemLogLatencyTest, PrintAppendLatency) {
  ShmDir dir("latency");
  LogOptions o = Options(dir.File("log"));
  o.pool_bytes = 64 << 20;
  std::unique_ptr<PmemLog> log = MustOpen(o);
  ASSERT_NE(log, nullptr);
  struct Case {
    uint64_t entries;
    uint64_t payload_bytes;
  };
  for (const Case c : {Case{1, 64}, Case{1, 256}, Case{1, 1024}, Case{1, 4096}, Case{1, 65536},
                       Case{16, 256}, Case{64, 1024}}) {
    constexpr int kCalls = 2000;
    std::vector<std::vector<LogEntry>> batches;
    uint64_t next = log->LastIndex() + 1;
    for (int i = 0; i < kCalls; ++i, next += c.entries) {
      batches.push_back(MakeBatch(next, c.entries, 1, c.payload_bytes));
    }
    std::vector<double> us;
    for (const std::vector<LogEntry>& batch : batches) {
      if (log->BytesUsed() + c.entries * format::RecordBytes(c.payload_bytes) >
          log->BytesCapacity()) {
        ASSERT_TRUE(log->CompactPrefix(log->LastIndex() + 1).ok());
      }
      const auto start = std::chrono::steady_clock::now();
      const absl::Status s = log->Append(batch);
      const auto end = std::chrono::steady_clock::now();
      ASSERT_TRUE(s.ok()) << s;
      us.push_back(std::chrono::duration<double, std::micro>(end - start).count());
    }
    std::sort(us.begin(), us.end());
    double sum = 0;
    for (double v : us) sum += v;
    std::printf(
        "append latency: %3lu x %6lu B: p50 %7.2f us  p99 %7.2f us  mean %7.2f us  "
        "(%.0f MB/s)\n",
        static_cast<unsigned long>(c.entries), static_cast<unsigned long>(c.payload_bytes),
        us[us.size() / 2], us[us.size() * 99 / 100], sum / us.size(),
        c.entries * c.payload_bytes * us.size() / sum);
  }
  std::vector<double> us;
  for (uint64_t i = 0; i < 2000; ++i) {
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(log->SetHardState({1, 1, i + 1}).ok());
    const auto end = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  std::sort(us.begin(), us.end());
  std::printf("set hard state latency: p50 %.2f us  p99 %.2f us\n", us[us.size() / 2],
              us[us.size() * 99 / 100]);
}

}  // namespace
}  // namespace blizzard::pmemlog
