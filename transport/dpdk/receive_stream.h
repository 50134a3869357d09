// One direction of the DPDK transport's reliable stream, receiver side: takes
// one peer's data frames in sequence order, acknowledges them, and turns them
// back into messages. Pure logic, like SendStream.
//
// Order: only the frame with the expected sequence number is accepted; an
// earlier one is a duplicate (our ack was lost or crossed a resend: ack
// again), a later one means a frame was lost (drop it and NACK). Nothing
// out of order is kept, so the only buffer is the reassembly buffer.
//
// Epochs: every sender instance has its own epoch. A frame with an epoch we
// have not seen means the peer started or restarted: its stream begins
// again at the frame's base_seq (the oldest frame it still holds), and a
// message we were reassembling from the old instance is discarded.
//
// Reassembly: frames arrive in order, so at most one message per peer is
// being reassembled, into one buffer of message_bytes_max reserved at
// construction (address space only: pages are touched as fragments arrive,
// and returned to the kernel after a message above kKeepBytes). A message
// whose fragments stop arriving for reassembly_timeout_us is discarded.
#ifndef BLIZZARD_TRANSPORT_DPDK_RECEIVE_STREAM_H_
#define BLIZZARD_TRANSPORT_DPDK_RECEIVE_STREAM_H_

#include <cstddef>
#include <cstdint>

#include "absl/functional/function_ref.h"
#include "absl/types/span.h"
#include "transport/dpdk/frame_format.h"
#include "transport/dpdk/send_stream.h"

namespace blizzard::transport::dpdk {

struct ReceiveStreamStats {
  uint64_t duplicates = 0;
  uint64_t out_of_order = 0;
  uint64_t rejected = 0;            // In sequence but with malformed content.
  uint64_t reassembly_failures = 0;  // Partial messages discarded.
  uint64_t epochs_adopted = 0;      // Peer starts and restarts seen.
};

class ReceiveStream {
 public:
  using Deliver = absl::FunctionRef<void(absl::Span<const uint8_t>)>;

  // Reassembly memory above this is returned to the kernel after use.
  static constexpr size_t kKeepBytes = 4u << 20;

  ReceiveStream(size_t message_bytes_max, int64_t reassembly_timeout_us);
  ~ReceiveStream();
  ReceiveStream(ReceiveStream&& other) noexcept;
  ReceiveStream& operator=(ReceiveStream&&) = delete;
  ReceiveStream(const ReceiveStream&) = delete;

  enum class Outcome {
    kAccepted,    // In sequence; complete messages were delivered.
    kDuplicate,   // Already had it.
    kOutOfOrder,  // A frame before it is missing; dropped.
    kRejected,    // In sequence, content malformed; acknowledged, dropped.
  };

  // Takes one data frame (already checksummed and addressed to us).
  // Calls `deliver` once per complete message; the span is valid only
  // during the call.
  Outcome OnData(const FrameHeader& header, absl::Span<const uint8_t> payload,
                 int64_t now_us, Deliver deliver);

  // Discards a partial message idle for reassembly_timeout_us.
  void Expire(int64_t now_us);
  int64_t DeadlineUs() const;

  // What the next ack to this peer says. epoch() is 0 before any frame.
  uint64_t epoch() const { return epoch_; }
  Seq expected_seq() const { return expected_; }
  bool ack_due() const { return ack_due_; }
  bool nack_due() const { return nack_due_; }
  void AckSent() { ack_due_ = nack_due_ = false; }

  bool reassembling() const { return partial_; }
  const ReceiveStreamStats& stats() const { return stats_; }

 private:
  Outcome Unpack(const FrameHeader& h, absl::Span<const uint8_t> payload,
                 Deliver deliver);
  Outcome Reassemble(const FrameHeader& h, absl::Span<const uint8_t> payload,
                     Deliver deliver, int64_t now_us);
  Outcome Reject();
  // Drops the message being reassembled (counted) and forgets the message
  // id sequence until a message starts cleanly.
  void DiscardPartial();
  void Trim();

  size_t message_bytes_max_;
  int64_t reassembly_timeout_us_;
  uint8_t* buffer_ = nullptr;  // message_bytes_max_ bytes, mmap'ed.
  size_t touched_bytes_ = 0;    // High-water mark of use since the last trim.

  uint64_t epoch_ = 0;
  Seq expected_ = 0;
  bool ack_due_ = false;
  bool nack_due_ = false;
  bool next_message_id_known_ = false;
  uint64_t next_message_id_ = 0;

  bool partial_ = false;
  uint64_t partial_message_id_ = 0;
  uint32_t partial_message_bytes_ = 0;
  uint32_t partial_fragment_count_ = 0;
  uint32_t partial_fragment_next_ = 0;
  uint32_t partial_filled_ = 0;
  int64_t partial_progress_us_ = 0;
  // Fragments of this message are dropped quietly (already counted).
  bool orphan_known_ = false;
  uint64_t orphan_message_id_ = 0;
  ReceiveStreamStats stats_;
};

}  // namespace blizzard::transport::dpdk

#endif  // BLIZZARD_TRANSPORT_DPDK_RECEIVE_STREAM_H_
