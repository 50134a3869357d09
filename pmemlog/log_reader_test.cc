// Damage to each part of a log image, seen by the reader (and thus by
// recovery): the right error code and a message that names the place.
#include "pmemlog/log_reader.h"

#include <xxhash.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "pmemlog/log_core.h"
#include "pmemlog/log_format.h"
#include "pmemlog/sim_persistence.h"
#include "pmemlog/test_util.h"

namespace blizzard::pmemlog {
namespace {

using ::blizzard::pmemlog::testing::kSimIdentity;
using ::blizzard::pmemlog::testing::kSimRingOffset;
using ::blizzard::pmemlog::testing::MakeBatch;
using ::blizzard::pmemlog::testing::NewSimLog;
using ::blizzard::pmemlog::testing::OpenSimImage;
using ::blizzard::pmemlog::testing::SimLog;

constexpr uint64_t kRing = 8192;
constexpr uint64_t kPayload = 40;  // Records of 72 bytes.

// An image holding entries 1..10 and a hard state.
std::vector<uint8_t> TenEntryImage() {
  SimLog l = NewSimLog(kRing);
  ABSL_RAW_CHECK(l.log->Append(MakeBatch(1, 10, 2, kPayload)).ok(), "append");
  ABSL_RAW_CHECK(l.log->SetHardState({2, 1, 5}).ok(), "hard state");
  return l.sim->CrashImage(CrashMode::kPersistedOnly);
}

uint64_t RecordAt(uint64_t index) {
  return kSimRingOffset + (index - 1) * format::RecordBytes(kPayload);
}

absl::Status Recover(const std::vector<uint8_t>& image) {
  return OpenSimImage(image, kRing).status();
}

void ExpectDataLoss(const std::vector<uint8_t>& image, const std::string& needle) {
  EXPECT_TRUE(testing::ErrorIs(Recover(image), absl::StatusCode::kDataLoss, needle));
}

TEST(LogReaderTest, IntactImageRecovers) {
  absl::StatusOr<SimLog> l = OpenSimImage(TenEntryImage(), kRing);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->log->LastIndex(), 10u);
  EXPECT_EQ(l->log->GetHardState(), (HardState{2, 1, 5}));
}

TEST(LogReaderTest, PayloadBitFlipNamesTheEntry) {
  std::vector<uint8_t> image = TenEntryImage();
  image[RecordAt(7) + format::kRecordHeaderBytes + 3] ^= 0x10;
  ExpectDataLoss(image, "entry 7 at log offset 432: checksum mismatch");
}

// A record whose checksum follows format version 1's definition (payload
// hashed with a per-record seed derived from the header) does not verify
// under version 2, even behind a version-2 header.
TEST(LogReaderTest, VersionOneRecordChecksumDoesNotVerify) {
  std::vector<uint8_t> image = TenEntryImage();
  const uint64_t at = RecordAt(6);
  format::RecordHeader h;
  std::memcpy(&h, image.data() + at, sizeof(h));
  const uint64_t logical = at - kSimRingOffset;
  const uint64_t header_hash = XXH3_64bits_withSeed(&h, format::kRecordChecksummedHeaderBytes,
                                                    logical ^ format::kRecordSeed);
  h.checksum = XXH3_64bits_withSeed(image.data() + at + format::kRecordHeaderBytes, kPayload,
                                    header_hash);
  std::memcpy(image.data() + at, &h, sizeof(h));
  ExpectDataLoss(image, "entry 6 at log offset 360: checksum mismatch");
}

TEST(LogReaderTest, EveryEntryHeaderBitFlipIsDetected) {
  const std::vector<uint8_t> intact = TenEntryImage();
  for (uint64_t byte = 0; byte < format::kRecordHeaderBytes; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> image = intact;
      image[RecordAt(4) + byte] ^= 1 << bit;
      const absl::Status s = Recover(image);
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << "byte " << byte << " bit " << bit;
      EXPECT_TRUE(absl::StrContains(s.message(), "entry 4")) << s;
    }
  }
}

TEST(LogReaderTest, EveryTailWordBitFlipIsDetected) {
  const std::vector<uint8_t> intact = TenEntryImage();
  for (int bit = 0; bit < 64; ++bit) {
    std::vector<uint8_t> image = intact;
    image[offsetof(format::MetaBlock, tail_word) + bit / 8] ^= 1 << (bit % 8);
    ExpectDataLoss(image, "tail word");
  }
}

TEST(LogReaderTest, EveryHeaderBitFlipIsDetected) {
  const std::vector<uint8_t> intact = TenEntryImage();
  for (uint64_t byte = 0; byte < sizeof(format::Header); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> image = intact;
      image[byte] ^= 1 << bit;
      const absl::Status s = Recover(image);
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << "byte " << byte << " bit " << bit;
      EXPECT_TRUE(absl::StrContains(s.message(), "header")) << s;
    }
  }
}

// Version 1 (whose record checksums this build does not compute) and any
// later version are refused before a record is read.
TEST(LogReaderTest, AnotherFormatVersionIsRefusedClearly) {
  static_assert(format::kFormatVersion == 2);
  for (uint32_t version : {1u, 3u}) {
    std::vector<uint8_t> image = TenEntryImage();
    format::Header h;
    std::memcpy(&h, image.data(), sizeof(h));
    h.format_version = version;
    h.checksum = format::HeaderChecksum(h);
    std::memcpy(image.data(), &h, sizeof(h));
    const absl::Status s = Recover(image);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), absl::StrCat("format version ", version))) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "reads version 2")) << s;
  }
}

TEST(LogReaderTest, DamagedNewestSlotFallsBackToThePreviousState) {
  SimLog l = NewSimLog(kRing);
  ASSERT_TRUE(l.log->SetHardState({1, 1, 0}).ok());
  ASSERT_TRUE(l.log->SetHardState({2, 2, 0}).ok());
  std::vector<uint8_t> image = l.sim->CrashImage(CrashMode::kPersistedOnly);
  absl::StatusOr<DecodedMeta> meta = DecodeMeta(image.data(), image.size(), 0, kSimIdentity);
  ASSERT_TRUE(meta.ok());
  const int newest = meta->active_slot;
  // A torn update of the newest slot is what this looks like to recovery.
  image[offsetof(format::MetaBlock, slots) + newest * 64 + 40] ^= 1;
  absl::StatusOr<SimLog> reopened = OpenSimImage(image, kRing);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(reopened->log->GetHardState(), (HardState{1, 1, 0}));
  // Both slots damaged: nothing to fall back to.
  image[offsetof(format::MetaBlock, slots) + (1 - newest) * 64 + 40] ^= 1;
  ExpectDataLoss(image, "both state slots");
}

TEST(LogReaderTest, BytesAfterThePublishedTailAreIgnored) {
  std::vector<uint8_t> image = TenEntryImage();
  std::memset(&image[RecordAt(11)], 0xee, 500);  // An unpublished, torn append.
  absl::StatusOr<SimLog> l = OpenSimImage(image, kRing);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->log->LastIndex(), 10u);
}

TEST(LogReaderTest, WalkCanContinuePastDamagedRecords) {
  std::vector<uint8_t> image = TenEntryImage();
  image[RecordAt(3) + format::kRecordHeaderBytes] ^= 1;
  image[RecordAt(8) + format::kRecordHeaderBytes] ^= 1;
  absl::StatusOr<DecodedMeta> meta = DecodeMeta(image.data(), image.size(), 0, std::nullopt);
  ASSERT_TRUE(meta.ok()) << meta.status();
  std::vector<uint64_t> damaged;
  uint64_t walked = 0;
  const absl::Status s = WalkRecords(*meta, true, [&](const WalkedRecord& r) {
    ++walked;
    if (!r.status.ok()) damaged.push_back(r.index);
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(walked, 10u);
  EXPECT_EQ(damaged, (std::vector<uint64_t>{3, 8}));
  // A strict walk stops at the first.
  walked = 0;
  EXPECT_FALSE(WalkRecords(*meta, false, [&](const WalkedRecord&) { ++walked; }).ok());
  EXPECT_EQ(walked, 3u);
}

TEST(LogReaderTest, MetaBlockOutsideTheRegionIsDataLoss) {
  const std::vector<uint8_t> image = TenEntryImage();
  EXPECT_EQ(DecodeMeta(image.data(), image.size(), 64, std::nullopt).status().code(),
            absl::StatusCode::kDataLoss);  // No header there.
  EXPECT_EQ(DecodeMeta(image.data(), 200, 0, std::nullopt).status().code(),
            absl::StatusCode::kDataLoss);  // Region too small.
  EXPECT_EQ(DecodeMeta(image.data(), 4096, 0, std::nullopt).status().code(),
            absl::StatusCode::kDataLoss);  // Ring past the region's end.
}

}  // namespace
}  // namespace blizzard::pmemlog
