#include "structures/sim_memory.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::structures {

absl::Status SimMemory::Begin() {
  ABSL_RAW_CHECK(!active_, "SimMemory::Begin inside a transaction");
  Point();
  log_count_ = 0;
  log_.clear();
  covered_.clear();
  Point();
  active_ = true;
  return absl::OkStatus();
}

absl::Status SimMemory::Snapshot(uint64_t offset, uint64_t bytes) {
  ABSL_RAW_CHECK(active_, "SimMemory::Snapshot outside a transaction");
  ABSL_RAW_CHECK(offset <= bytes_.size() && bytes <= bytes_.size() - offset,
                 "SimMemory::Snapshot out of range");
  Point();  // Writing the entry: not counted yet, so tearing it is harmless.
  log_.resize(log_count_);
  log_.push_back(Undo{offset, std::string(reinterpret_cast<const char*>(&bytes_[offset]), bytes)});
  Point();
  log_count_++;
  // Merge [offset, offset + bytes) into covered_.
  uint64_t start = offset, end = offset + bytes;
  auto it = covered_.upper_bound(start);
  if (it != covered_.begin() && std::prev(it)->second >= start) --it;
  while (it != covered_.end() && it->first <= end) {
    start = std::min(start, it->first);
    end = std::max(end, it->second);
    it = covered_.erase(it);
  }
  covered_.emplace(start, end);
  return absl::OkStatus();
}

void SimMemory::Store(uint64_t offset, const void* src, uint64_t bytes) {
  ABSL_RAW_CHECK(active_, "SimMemory::Store outside a transaction");
  // The paired check of the ArenaMemory contract: this transaction's
  // snapshots cover every byte of the store.
  auto it = covered_.upper_bound(offset);
  ABSL_RAW_CHECK(it != covered_.begin() && std::prev(it)->second >= offset + bytes,
                 "SimMemory::Store of a range that was not snapshotted");
  const auto* p = static_cast<const uint8_t*>(src);
  Point();
  const uint64_t half = bytes / 2;
  std::memcpy(&bytes_[offset], p, half);
  if (half > 0) Point();  // Torn: the first half is in, the second is not.
  std::memcpy(&bytes_[offset + half], p + half, bytes - half);
}

absl::Status SimMemory::Commit() {
  ABSL_RAW_CHECK(active_, "SimMemory::Commit outside a transaction");
  Point();
  active_ = false;  // The commit point.
  return absl::OkStatus();
}

void SimMemory::Abort() {
  ABSL_RAW_CHECK(active_, "SimMemory::Abort outside a transaction");
  for (uint64_t i = log_count_; i-- > 0;) {
    Point();
    std::memcpy(&bytes_[log_[i].offset], log_[i].pre.data(), log_[i].pre.size());
  }
  Point();
  active_ = false;
}

std::vector<uint8_t> SimMemory::RecoveredImage() const {
  std::vector<uint8_t> image = bytes_;
  if (active_) {
    for (uint64_t i = log_count_; i-- > 0;) {
      std::memcpy(&image[log_[i].offset], log_[i].pre.data(), log_[i].pre.size());
    }
  }
  return image;
}

void SimMemory::Reset(const std::vector<uint8_t>& image) {
  ABSL_RAW_CHECK(image.size() == bytes_.size(), "SimMemory::Reset of another size");
  bytes_ = image;
  log_.clear();
  covered_.clear();
  log_count_ = 0;
  active_ = false;
}

}  // namespace blizzard::structures
