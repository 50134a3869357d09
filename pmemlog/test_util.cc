#include "pmemlog/test_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"

namespace blizzard::pmemlog::testing {

LogEntry MakeEntry(uint64_t index, uint64_t term, uint64_t payload_bytes, uint64_t salt) {
  LogEntry e;
  e.index = index;
  e.term = term;
  e.type = static_cast<uint8_t>((index + salt) % 3);
  e.payload.resize(payload_bytes);
  uint64_t x = (index * 0x9E3779B97F4A7C15ull) ^ (term * 0xC2B2AE3D27D4EB4Full) ^ salt ^ 1;
  for (uint64_t i = 0; i < payload_bytes; i += sizeof(x)) {
    x ^= x << 13;  // xorshift64: 8 payload bytes per step.
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&e.payload[i], &x, std::min<uint64_t>(sizeof(x), payload_bytes - i));
  }
  return e;
}

std::vector<LogEntry> MakeBatch(uint64_t first_index, uint64_t count, uint64_t term,
                                uint64_t payload_bytes, uint64_t salt) {
  std::vector<LogEntry> batch;
  for (uint64_t i = 0; i < count; ++i) {
    batch.push_back(MakeEntry(first_index + i, term, payload_bytes, salt));
  }
  return batch;
}

RegionLayout SimLayout(uint64_t ring_bytes) {
  return RegionLayout{kSimMetaOffset, kSimRingOffset, ring_bytes};
}

uint64_t SimRegionBytes(uint64_t ring_bytes) { return kSimRingOffset + ring_bytes; }

std::unique_ptr<SimPersistence> FormattedSim(uint64_t ring_bytes, uint64_t seed,
                                             double evict_probability) {
  auto sim = std::make_unique<SimPersistence>(
      SimPersistenceOptions{SimRegionBytes(ring_bytes), seed, evict_probability});
  const absl::Status s = LogCore::Format(sim.get(), SimLayout(ring_bytes), kSimIdentity);
  ABSL_RAW_CHECK(s.ok(), "formatting a simulated region failed");
  return sim;
}

::testing::AssertionResult ErrorIs(const absl::Status& status, absl::StatusCode code,
                                   const std::string& needle) {
  if (status.code() == code && absl::StrContains(status.message(), needle)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << status << " is not " << absl::StatusCodeToString(code) << " with \"" << needle << "\"";
}

SimLog NewSimLog(uint64_t ring_bytes, uint64_t seed, double evict_probability) {
  SimLog l;
  l.sim = FormattedSim(ring_bytes, seed, evict_probability);
  absl::StatusOr<std::unique_ptr<LogCore>> log =
      LogCore::Open(l.sim.get(), kSimMetaOffset, kSimIdentity);
  ABSL_RAW_CHECK(log.ok(), "opening a fresh simulated log failed");
  l.log = std::move(*log);
  return l;
}

absl::StatusOr<SimLog> OpenSimImage(const std::vector<uint8_t>& image, uint64_t ring_bytes,
                                    uint64_t seed, double evict_probability) {
  SimLog l;
  l.sim = std::make_unique<SimPersistence>(
      SimPersistenceOptions{SimRegionBytes(ring_bytes), seed, evict_probability}, image);
  absl::StatusOr<std::unique_ptr<LogCore>> log =
      LogCore::Open(l.sim.get(), kSimMetaOffset, kSimIdentity);
  if (!log.ok()) return log.status();
  l.log = std::move(*log);
  return l;
}

void LogModel::Append(const std::vector<LogEntry>& batch) {
  if (batch.empty()) return;
  TruncateSuffix(batch.front().index);
  entries.insert(entries.end(), batch.begin(), batch.end());
}

void LogModel::TruncateSuffix(uint64_t from) {
  if (from <= LastIndex()) entries.resize(from - first_index);
}

void LogModel::CompactPrefix(uint64_t upto) {
  if (upto <= first_index) return;
  prev_term = TermAt(upto - 1);
  entries.erase(entries.begin(), entries.begin() + (upto - first_index));
  first_index = upto;
}

void LogModel::Reset(uint64_t snapshot_index, uint64_t snapshot_term) {
  entries.clear();
  first_index = snapshot_index + 1;
  prev_term = snapshot_term;
}

ShmDir::ShmDir(const std::string& name)
    : path_(absl::StrFormat("/dev/shm/pmemlog_%d_%s", getpid(), name)) {
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

ShmDir::~ShmDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void FlipFileByte(const std::string& path, uint64_t offset, uint8_t mask) {
  const int fd = open(path.c_str(), O_RDWR);
  ABSL_RAW_CHECK(fd >= 0, "cannot open the file to damage");
  uint8_t b = 0;
  ABSL_RAW_CHECK(pread(fd, &b, 1, static_cast<off_t>(offset)) == 1, "pread failed");
  b ^= mask;
  ABSL_RAW_CHECK(pwrite(fd, &b, 1, static_cast<off_t>(offset)) == 1, "pwrite failed");
  close(fd);
}

}  // namespace blizzard::pmemlog::testing
