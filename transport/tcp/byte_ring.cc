#include "transport/tcp/byte_ring.h"

#include <algorithm>
#include <cstring>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::transport::tcp {

ByteRing::ByteRing(size_t capacity_max) : capacity_max_(capacity_max) {
  ABSL_RAW_CHECK(capacity_max > 0, "ring capacity_max must be positive");
}

bool ByteRing::Append(absl::Span<const uint8_t> a,
                      absl::Span<const uint8_t> b) {
  const size_t n = a.size() + b.size();
  if (n > capacity_max_ - size_) return false;
  if (size_ + n > capacity_) Grow(size_ + n);
  for (absl::Span<const uint8_t> part : {a, b}) {
    size_t tail = (head_ + size_) % capacity_;
    size_t first = std::min(part.size(), capacity_ - tail);
    if (first > 0) std::memcpy(&buffer_[tail], part.data(), first);
    if (part.size() > first) {
      std::memcpy(&buffer_[0], part.data() + first, part.size() - first);
    }
    size_ += part.size();
  }
  ABSL_RAW_CHECK(size_ <= capacity_, "ring overfilled");
  return true;
}

int ByteRing::Readable(struct iovec iov[2]) const {
  if (size_ == 0) return 0;
  size_t first = std::min(size_, capacity_ - head_);
  iov[0].iov_base = &buffer_[head_];
  iov[0].iov_len = first;
  if (first == size_) return 1;
  iov[1].iov_base = &buffer_[0];
  iov[1].iov_len = size_ - first;
  return 2;
}

void ByteRing::Peek(size_t offset, absl::Span<uint8_t> out) const {
  ABSL_RAW_CHECK(offset <= size_ && out.size() <= size_ - offset,
                 "ring peek past the end");
  size_t start = (head_ + offset) % std::max<size_t>(capacity_, 1);
  size_t first = std::min(out.size(), capacity_ - start);
  if (first > 0) std::memcpy(out.data(), &buffer_[start], first);
  if (out.size() > first) {
    std::memcpy(out.data() + first, &buffer_[0], out.size() - first);
  }
}

void ByteRing::Consume(size_t n) {
  ABSL_RAW_CHECK(n <= size_, "ring consume past the end");
  size_ -= n;
  // An empty ring restarts at 0 so the next burst is one contiguous iovec.
  head_ = size_ == 0 ? 0 : (head_ + n) % capacity_;
}

void ByteRing::Grow(size_t size_needed) {
  ABSL_RAW_CHECK(size_needed <= capacity_max_, "ring grown past its bound");
  size_t capacity = std::max(capacity_, std::min(kCapacityInitial,
                                                 capacity_max_));
  while (capacity < size_needed) capacity *= 2;
  capacity = std::min(capacity, capacity_max_);
  // Not value-initialized: zeroing megabytes that are about to be
  // overwritten is wasted work.
  auto buffer = std::make_unique_for_overwrite<uint8_t[]>(capacity);
  if (size_ > 0) {
    Peek(0, absl::MakeSpan(buffer.get(), size_));
  }
  buffer_ = std::move(buffer);
  capacity_ = capacity;
  head_ = 0;
}

}  // namespace blizzard::transport::tcp
