#include "pmemlog/inspect.h"

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "pmemlog/log_core.h"
#include "pmemlog/log_format.h"
#include "pmemlog/pmem_log.h"
#include "pmemlog/sim_persistence.h"
#include "pmemlog/test_util.h"

namespace blizzard::pmemlog {
namespace {

using ::blizzard::pmemlog::testing::FlipFileByte;
using ::blizzard::pmemlog::testing::MakeBatch;
using ::blizzard::pmemlog::testing::NewSimLog;
using ::blizzard::pmemlog::testing::ShmDir;
using ::blizzard::pmemlog::testing::SimLog;

constexpr uint64_t kPayload = 100;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class InspectTest : public ::testing::Test {
 protected:
  InspectTest() : dir_("inspect"), path_(dir_.File("log")) {
    LogOptions o;
    o.path = path_;
    o.pool_bytes = 16 << 20;
    o.cluster_id = 4;
    o.node_id = 9;
    absl::StatusOr<std::unique_ptr<PmemLog>> log = PmemLog::Open(o);
    ABSL_RAW_CHECK(log.ok(), "open");
    ABSL_RAW_CHECK((*log)->Append(MakeBatch(1, 30, 2, kPayload)).ok(), "append");
    ABSL_RAW_CHECK((*log)->CompactPrefix(3).ok(), "compact");
    ABSL_RAW_CHECK((*log)->SetHardState({2, 9, 20}).ok(), "hard state");
  }
  // File offset of entry `index`'s record (the ring starts at logical 0).
  uint64_t RecordOffset(uint64_t index) {
    const std::string report = *DescribeLog(path_);
    const size_t at = report.find("ring_offset=");
    return std::stoull(report.substr(at + 12)) + (index - 1) * format::RecordBytes(kPayload);
  }

  ShmDir dir_;
  std::string path_;
};

TEST_F(InspectTest, HealthyPool) {
  absl::StatusOr<std::string> report = DescribeLog(path_, {2, 2, 10});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(absl::StartsWith(*report, "pmemlog " + path_ + ": OK\n")) << *report;
  EXPECT_TRUE(absl::StrContains(
      *report, absl::StrCat("version=", format::kFormatVersion, " cluster=4 node=9")))
      << *report;
  EXPECT_TRUE(absl::StrContains(*report, "first_index=3 prev_term=2")) << *report;
  EXPECT_TRUE(absl::StrContains(*report, "hard_state={term=2 vote=9 commit=20}")) << *report;
  EXPECT_TRUE(absl::StrContains(*report, "entries: 28 walked (indices 3..30), 0 damaged"));
  EXPECT_TRUE(absl::StrContains(*report, "entry 3: term=2")) << *report;
  EXPECT_TRUE(absl::StrContains(*report, "entry 30: term=2")) << *report;
  EXPECT_TRUE(absl::StrContains(*report, "... 24 entries not listed")) << *report;
  EXPECT_FALSE(absl::StrContains(*report, "entry 10:")) << *report;
}

// libpmemobj's open bumps fields of its own pool descriptor (run id, ...),
// which lives in the pool's first pages; the log's bytes are never written.
TEST_F(InspectTest, WritesNothingOfTheLog) {
  constexpr size_t kPmemobjDescriptorEnd = 8192;
  const std::string before = ReadFile(path_);
  ASSERT_TRUE(DescribeLog(path_).ok());
  const std::string after = ReadFile(path_);
  ASSERT_EQ(after.size(), before.size());
  EXPECT_TRUE(after.compare(kPmemobjDescriptorEnd, std::string::npos, before, kPmemobjDescriptorEnd,
                            std::string::npos) == 0);
}

TEST_F(InspectTest, ReportsEveryDamagedEntryAndKeepsWalking) {
  FlipFileByte(path_, RecordOffset(5) + format::kRecordHeaderBytes + 1, 1);
  FlipFileByte(path_, RecordOffset(17) + format::kRecordHeaderBytes + 99, 0x80);
  absl::StatusOr<std::string> report = DescribeLog(path_, {2, 2, 10});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(absl::StrContains(*report, ": CORRUPT: pmemlog entry 5 at log offset")) << *report;
  EXPECT_TRUE(absl::StrContains(*report, "entries: 28 walked (indices 3..30), 2 damaged"));
  EXPECT_TRUE(absl::StrContains(*report, "entry 5: term=2 type=2 payload_bytes=100"));
  EXPECT_TRUE(absl::StrContains(*report, "entry 17: term=2")) << *report;
  EXPECT_TRUE(absl::StrContains(*report, "DAMAGED: pmemlog entry 17")) << *report;
  // The log itself refuses to serve.
  LogOptions o;
  o.path = path_;
  o.cluster_id = 4;
  o.node_id = 9;
  EXPECT_EQ(PmemLog::Open(o).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(InspectTest, DamagedTailStillShowsHeaderAndSlots) {
  const std::string healthy = *DescribeLog(path_);
  const size_t at = healthy.find("tail word: 0x");
  ASSERT_NE(at, std::string::npos);
  // Damage the tail word through the file: locate it by its value.
  const std::string file = ReadFile(path_);
  const uint64_t word = std::stoull(healthy.substr(at + 11, 18), nullptr, 16);
  const size_t pos = file.find(std::string(reinterpret_cast<const char*>(&word), 8));
  ASSERT_NE(pos, std::string::npos);
  FlipFileByte(path_, pos + 2, 0x10);
  absl::StatusOr<std::string> report = DescribeLog(path_);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(absl::StrContains(*report, "CORRUPT: pmemlog tail word")) << *report;
  EXPECT_TRUE(absl::StrContains(*report, "(BAD)")) << *report;
  EXPECT_TRUE(absl::StrContains(*report, "header: magic=0x3130474f4c5a4c42")) << *report;
  EXPECT_TRUE(absl::StrContains(*report, "slot 0: valid")) << *report;
}

TEST(InspectFileTest, NotAPoolIsAnError) {
  ShmDir dir("inspect_junk");
  { std::ofstream(dir.File("junk")) << "hello"; }
  EXPECT_EQ(DescribeLog(dir.File("junk")).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DescribeLog(dir.File("missing")).status().code(), absl::StatusCode::kNotFound);
}

TEST(InspectRegionTest, DescribesASimulatedImageAndRefusesAnotherVersion) {
  SimLog l = NewSimLog(8192);
  ASSERT_TRUE(l.log->Append(MakeBatch(1, 3, 1, 10)).ok());
  std::vector<uint8_t> image = l.sim->CrashImage(CrashMode::kPersistedOnly);
  std::string report = DescribeRegion("sim", image.data(), image.size(), 0);
  EXPECT_TRUE(absl::StartsWith(report, "pmemlog sim: OK\n")) << report;
  EXPECT_TRUE(absl::StrContains(report, "entries: 3 walked (indices 1..3), 0 damaged"));
  format::Header h;
  std::memcpy(&h, image.data(), sizeof(h));
  h.format_version = 7;
  h.checksum = format::HeaderChecksum(h);
  std::memcpy(image.data(), &h, sizeof(h));
  report = DescribeRegion("sim", image.data(), image.size(), 0);
  EXPECT_TRUE(absl::StartsWith(report, "pmemlog sim: REFUSED: pmemlog pool has format version 7"))
      << report;
}

}  // namespace
}  // namespace blizzard::pmemlog
