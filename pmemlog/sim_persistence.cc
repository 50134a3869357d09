#include "pmemlog/sim_persistence.h"

#include <cstring>
#include <new>

#include "absl/base/internal/raw_logging.h"
#include "pmemlog/log_format.h"

namespace blizzard::pmemlog {
namespace {

constexpr uint64_t kWordBytes = 8;
constexpr std::align_val_t kRegionAlign{format::kCacheLineBytes};

}  // namespace

SimPersistence::SimPersistence(const SimPersistenceOptions& options)
    : size_bytes_(options.size_bytes),
      evict_probability_(options.evict_probability),
      rng_(options.seed),
      media_(options.size_bytes, 0),
      state_(options.size_bytes / kWordBytes, kDurable) {
  ABSL_RAW_CHECK(size_bytes_ > 0 && size_bytes_ % format::kCacheLineBytes == 0,
                 "simulated region size must be a positive multiple of 64");
  mem_ = static_cast<uint8_t*>(::operator new[](size_bytes_, kRegionAlign));
  std::memset(mem_, 0, size_bytes_);
}

SimPersistence::SimPersistence(const SimPersistenceOptions& options,
                               absl::Span<const uint8_t> image)
    : SimPersistence(options) {
  ABSL_RAW_CHECK(image.size() == size_bytes_, "image size differs from the region size");
  std::memcpy(mem_, image.data(), size_bytes_);
  std::memcpy(media_.data(), image.data(), size_bytes_);
}

SimPersistence::~SimPersistence() { ::operator delete[](mem_, kRegionAlign); }

uint64_t SimPersistence::OffsetOf(const void* addr, uint64_t len) const {
  ABSL_RAW_CHECK(Contains(addr, len), "event outside the simulated region");
  ABSL_RAW_CHECK(!in_hook_, "the event hook issued a persistence event");
  return static_cast<uint64_t>(static_cast<const uint8_t*>(addr) - mem_);
}

void SimPersistence::BeforeStore(uint64_t offset, uint64_t len) {
  if (len == 0) return;
  const uint64_t first = offset / kWordBytes;
  const uint64_t last = (offset + len - 1) / kWordBytes;
  for (uint64_t w = first; w <= last; ++w) {
    if (state_[w] == kDurable) {
      pending_.push_back(w);
    } else if (evict_probability_ > 0 &&
               static_cast<double>(rng_() >> 11) * 0x1.0p-53 < evict_probability_) {
      // The older, not yet durable value was written back before this store.
      std::memcpy(&media_[w * kWordBytes], mem_ + w * kWordBytes, kWordBytes);
    }
    state_[w] = kDirty;
  }
}

void SimPersistence::MarkFlushed(uint64_t offset, uint64_t len) {
  if (len == 0) return;
  // A flush writes back whole cache lines.
  const uint64_t begin = format::RoundDown(offset, format::kCacheLineBytes) / kWordBytes;
  const uint64_t end = format::RoundUp(offset + len, format::kCacheLineBytes) / kWordBytes;
  for (uint64_t w = begin; w < end; ++w) {
    if (state_[w] == kDirty) state_[w] = kFlushed;
  }
}

void SimPersistence::EndEvent() {
  ++events_;
  if (hook_) {
    in_hook_ = true;
    hook_(events_);
    in_hook_ = false;
  }
}

void SimPersistence::Store(void* dst, const void* src, uint64_t len) {
  const uint64_t offset = OffsetOf(dst, len);
  BeforeStore(offset, len);
  std::memcpy(dst, src, len);
  EndEvent();
}

void SimPersistence::Store64(uint64_t* dst, uint64_t value) {
  const uint64_t offset = OffsetOf(dst, sizeof(value));
  ABSL_RAW_CHECK(offset % kWordBytes == 0, "unaligned 8-byte store");
  BeforeStore(offset, sizeof(value));
  *dst = value;
  EndEvent();
}

void SimPersistence::CopyNoDrain(void* dst, const void* src, uint64_t len) {
  const uint64_t offset = OffsetOf(dst, len);
  BeforeStore(offset, len);
  std::memcpy(dst, src, len);
  MarkFlushed(offset, len);
  EndEvent();
}

void SimPersistence::StreamNoDrain(void* dst, const void* src, uint64_t len) {
  const uint64_t offset = OffsetOf(dst, len);
  ABSL_RAW_CHECK(offset % format::kCacheLineBytes == 0 && len % format::kCacheLineBytes == 0,
                 "streaming copy of partial cache lines");
  BeforeStore(offset, len);
  std::memcpy(dst, src, len);
  MarkFlushed(offset, len);
  EndEvent();
}

void SimPersistence::Store64NoDrain(uint64_t* dst, uint64_t value) {
  const uint64_t offset = OffsetOf(dst, sizeof(value));
  ABSL_RAW_CHECK(offset % kWordBytes == 0, "unaligned 8-byte store");
  BeforeStore(offset, sizeof(value));
  *dst = value;
  MarkFlushed(offset, sizeof(value));
  EndEvent();
}

void SimPersistence::Flush(const void* addr, uint64_t len) {
  MarkFlushed(OffsetOf(addr, len), len);
  EndEvent();
}

void SimPersistence::Drain() {
  ABSL_RAW_CHECK(!in_hook_, "the event hook issued a persistence event");
  size_t kept = 0;
  for (uint64_t w : pending_) {
    if (state_[w] == kFlushed) {
      std::memcpy(&media_[w * kWordBytes], mem_ + w * kWordBytes, kWordBytes);
      state_[w] = kDurable;
    } else {
      pending_[kept++] = w;
    }
  }
  pending_.resize(kept);
  EndEvent();
}

std::vector<uint8_t> SimPersistence::CrashImage(CrashMode mode) {
  std::vector<uint8_t> image = media_;
  if (mode == CrashMode::kTorn) {
    for (uint64_t w : pending_) {
      if (rng_() & 1) std::memcpy(&image[w * kWordBytes], mem_ + w * kWordBytes, kWordBytes);
    }
  }
  return image;
}

}  // namespace blizzard::pmemlog
