#include "transport/dpdk/receive_stream.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::transport::dpdk {

ReceiveStream::ReceiveStream(size_t message_bytes_max,
                             int64_t reassembly_timeout_us)
    : message_bytes_max_(message_bytes_max),
      reassembly_timeout_us_(reassembly_timeout_us) {
  ABSL_RAW_CHECK(message_bytes_max > 0 && message_bytes_max <= kMessageBytesMax,
                 "message_bytes_max out of range");
  ABSL_RAW_CHECK(reassembly_timeout_us > 0, "reassembly timeout must be > 0");
  // Reserved, not committed: a peer that never sends a large message costs
  // address space only.
  void* p = mmap(nullptr, message_bytes_max_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ABSL_RAW_CHECK(p != MAP_FAILED, "mmap of the reassembly buffer failed");
  buffer_ = static_cast<uint8_t*>(p);
}

ReceiveStream::~ReceiveStream() {
  if (buffer_ != nullptr) munmap(buffer_, message_bytes_max_);
}

ReceiveStream::ReceiveStream(ReceiveStream&& o) noexcept
    : message_bytes_max_(o.message_bytes_max_),
      reassembly_timeout_us_(o.reassembly_timeout_us_),
      buffer_(o.buffer_),
      touched_bytes_(o.touched_bytes_),
      epoch_(o.epoch_),
      expected_(o.expected_),
      ack_due_(o.ack_due_),
      nack_due_(o.nack_due_),
      next_message_id_known_(o.next_message_id_known_),
      next_message_id_(o.next_message_id_),
      partial_(o.partial_),
      partial_message_id_(o.partial_message_id_),
      partial_message_bytes_(o.partial_message_bytes_),
      partial_fragment_count_(o.partial_fragment_count_),
      partial_fragment_next_(o.partial_fragment_next_),
      partial_filled_(o.partial_filled_),
      partial_progress_us_(o.partial_progress_us_),
      orphan_known_(o.orphan_known_),
      orphan_message_id_(o.orphan_message_id_),
      stats_(o.stats_) {
  o.buffer_ = nullptr;
}

ReceiveStream::Outcome ReceiveStream::OnData(const FrameHeader& h,
                                             absl::Span<const uint8_t> payload,
                                             int64_t now_us, Deliver deliver) {
  ABSL_RAW_CHECK(IsData(h.kind) && payload.size() == h.payload_bytes,
                 "OnData takes decoded data frames");
  if (h.src_epoch != epoch_) {
    // The peer (re)started: its stream resumes at the oldest frame it holds.
    DiscardPartial();
    epoch_ = h.src_epoch;
    expected_ = h.base_seq;
    next_message_id_known_ = false;
    orphan_known_ = false;
    ++stats_.epochs_adopted;
  } else if (h.base_seq > expected_) {
    // The peer gave up frames we never acknowledged. A correct peer never
    // does; follow it rather than stall the stream forever.
    DiscardPartial();
    expected_ = h.base_seq;
    next_message_id_known_ = false;
  }
  ack_due_ = true;
  if (h.seq < expected_) {
    ++stats_.duplicates;
    return Outcome::kDuplicate;
  }
  if (h.seq > expected_) {
    ++stats_.out_of_order;
    nack_due_ = true;
    return Outcome::kOutOfOrder;
  }
  ++expected_;
  nack_due_ = false;
  return h.kind == kKindMessages ? Unpack(h, payload, deliver)
                                 : Reassemble(h, payload, deliver, now_us);
}

ReceiveStream::Outcome ReceiveStream::Reject() {
  ++stats_.rejected;
  next_message_id_known_ = false;
  return Outcome::kRejected;
}

ReceiveStream::Outcome ReceiveStream::Unpack(const FrameHeader& h,
                                             absl::Span<const uint8_t> payload,
                                             Deliver deliver) {
  // A whole message arriving means the one being reassembled never will.
  DiscardPartial();
  // Validate every record before delivering any: a frame is all or nothing.
  size_t offset = 0;
  for (uint32_t i = 0; i < h.message_count; ++i) {
    if (payload.size() - offset < kRecordPrefixBytes) return Reject();
    uint32_t length;
    std::memcpy(&length, payload.data() + offset, sizeof(length));
    offset += kRecordPrefixBytes;
    if (length > message_bytes_max_ || length > payload.size() - offset) {
      return Reject();
    }
    offset += length;
  }
  if (offset != payload.size()) return Reject();
  if (next_message_id_known_ && h.message_id != next_message_id_) {
    return Reject();
  }
  offset = 0;
  for (uint32_t i = 0; i < h.message_count; ++i) {
    uint32_t length;
    std::memcpy(&length, payload.data() + offset, sizeof(length));
    offset += kRecordPrefixBytes;
    deliver(payload.subspan(offset, length));
    offset += length;
  }
  next_message_id_ = h.message_id + h.message_count;
  next_message_id_known_ = true;
  return Outcome::kAccepted;
}

ReceiveStream::Outcome ReceiveStream::Reassemble(
    const FrameHeader& h, absl::Span<const uint8_t> payload, Deliver deliver,
    int64_t now_us) {
  if (h.fragment_index == 0) {
    DiscardPartial();
    if ((next_message_id_known_ && h.message_id != next_message_id_) ||
        h.message_bytes > message_bytes_max_) {
      // Its remaining fragments are orphans: dropped without more counting.
      orphan_known_ = true;
      orphan_message_id_ = h.message_id;
      return Reject();
    }
    partial_ = true;
    partial_message_id_ = h.message_id;
    partial_message_bytes_ = h.message_bytes;
    partial_fragment_count_ = h.fragment_count;
    partial_fragment_next_ = 0;
    partial_filled_ = 0;
  } else if (!partial_ || h.message_id != partial_message_id_) {
    // The rest of a message whose start we never had: we joined the stream
    // mid-message (peer restart) or discarded its start. Count it once.
    DiscardPartial();
    if (!orphan_known_ || orphan_message_id_ != h.message_id) {
      orphan_known_ = true;
      orphan_message_id_ = h.message_id;
      ++stats_.reassembly_failures;
    }
    next_message_id_known_ = h.fragment_index + 1 == h.fragment_count;
    next_message_id_ = h.message_id + 1;
    return Outcome::kAccepted;
  }
  if (h.fragment_index != partial_fragment_next_ ||
      h.fragment_count != partial_fragment_count_ ||
      h.message_bytes != partial_message_bytes_ ||
      payload.size() > partial_message_bytes_ - partial_filled_) {
    DiscardPartial();
    return Reject();
  }
  std::memcpy(buffer_ + partial_filled_, payload.data(), payload.size());
  partial_filled_ += static_cast<uint32_t>(payload.size());
  touched_bytes_ = std::max<size_t>(touched_bytes_, partial_filled_);
  ++partial_fragment_next_;
  partial_progress_us_ = now_us;
  const bool last = partial_fragment_next_ == partial_fragment_count_;
  const bool full = partial_filled_ == partial_message_bytes_;
  if (last != full) {  // Ran out of fragments or of bytes too early.
    DiscardPartial();
    return Reject();
  }
  if (last) {
    deliver(absl::MakeConstSpan(buffer_, partial_message_bytes_));
    next_message_id_ = partial_message_id_ + 1;
    next_message_id_known_ = true;
    partial_ = false;
    Trim();
  }
  return Outcome::kAccepted;
}

void ReceiveStream::DiscardPartial() {
  if (!partial_) return;
  partial_ = false;
  ++stats_.reassembly_failures;
  orphan_known_ = true;
  orphan_message_id_ = partial_message_id_;
  next_message_id_known_ = false;
  Trim();
}

void ReceiveStream::Trim() {
  if (touched_bytes_ <= kKeepBytes) return;
  // Give pages of a large message back; the next one faults them in again.
  const size_t page = 4096;
  const size_t end = std::min(message_bytes_max_,
                              (touched_bytes_ + page - 1) / page * page);
  madvise(buffer_ + kKeepBytes, end - kKeepBytes, MADV_DONTNEED);
  touched_bytes_ = kKeepBytes;
}

void ReceiveStream::Expire(int64_t now_us) {
  if (partial_ && now_us - partial_progress_us_ >= reassembly_timeout_us_) {
    DiscardPartial();
  }
}

int64_t ReceiveStream::DeadlineUs() const {
  return partial_ ? partial_progress_us_ + reassembly_timeout_us_ : kNeverUs;
}

}  // namespace blizzard::transport::dpdk
