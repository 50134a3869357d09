// A growable ring buffer of bytes: one per peer, holding encoded frames
// (header + payload) back to back until the socket takes them.
//
// Why a ring rather than a queue of per-message buffers: Send copies each
// message once into contiguous memory with no allocation per message, and the
// whole queue is handed to the kernel as at most two iovecs, so one sendmsg
// writes many frames. The ring starts small and doubles up to capacity_max
// (the per-peer bound); it never shrinks, so a peer's memory is bounded by
// capacity_max and steady state allocates nothing.
#ifndef BLIZZARD_TRANSPORT_TCP_BYTE_RING_H_
#define BLIZZARD_TRANSPORT_TCP_BYTE_RING_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/types/span.h"

namespace blizzard::transport::tcp {

class ByteRing {
 public:
  static constexpr size_t kCapacityInitial = 64u << 10;

  explicit ByteRing(size_t capacity_max);

  ByteRing(ByteRing&&) = default;
  ByteRing& operator=(ByteRing&&) = default;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return capacity_; }
  size_t capacity_max() const { return capacity_max_; }

  // Appends `a` then `b` as one unit. Returns false (and appends nothing) if
  // the ring would exceed capacity_max.
  bool Append(absl::Span<const uint8_t> a, absl::Span<const uint8_t> b);

  // Fills up to two iovecs describing all readable bytes, oldest first.
  // Returns how many it filled (0 when empty).
  int Readable(struct iovec iov[2]) const;

  // Copies out.size() bytes starting `offset` bytes after the head.
  void Peek(size_t offset, absl::Span<uint8_t> out) const;

  // Removes the n oldest bytes (n <= size()).
  void Consume(size_t n);

 private:
  void Grow(size_t size_needed);

  std::unique_ptr<uint8_t[]> buffer_;
  size_t capacity_ = 0;
  size_t capacity_max_ = 0;
  size_t head_ = 0;  // Index of the oldest byte.
  size_t size_ = 0;
};

}  // namespace blizzard::transport::tcp

#endif  // BLIZZARD_TRANSPORT_TCP_BYTE_RING_H_
