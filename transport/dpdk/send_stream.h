// One direction of the DPDK transport's reliable stream, sender side: the
// messages queued for one peer, cut into frames, kept until acknowledged and
// resent when lost. Pure logic (no DPDK, no clock of its own: callers pass
// `now_us`), so loss and timing are tested deterministically.
//
// Queue: the messages are stored back to back as records (u32 length +
// bytes) in a ByteRing bounded by queue_bytes_max; an empty queue takes one
// maximal message. Bytes leave the ring only when the peer has acknowledged
// every frame that carried them, so the ring is also the retransmission
// buffer (no copy per frame is kept; a lost frame is rebuilt from the ring).
//
// Framing (FORMAT.md): consecutive records that fit in one frame are packed
// together as-is into a messages frame (many small Raft messages cost one
// frame); a record that does not fit in a frame of its own is sent as
// fragments of exactly the frame's payload size (the last may be shorter),
// without its length prefix.
//
// Reliability: every frame has a sequence number; at most window_frames are
// unacknowledged. Acks are cumulative (ack_seq = the next frame the peer
// expects). Losses are repaired go-back-N: on a NACK (the peer saw a gap,
// so it is alive and everything after the gap was dropped) sending restarts
// at the gap. Go-back-N rather than selective repeat because the receiver
// then keeps no out-of-order frames (no buffers to bound), and losses on a
// link we do not overrun are rare and come in bursts (a full ring) where a
// whole tail is lost anyway.
//
// The retransmission timeout follows RFC 6298 (srtt + 4 rttvar, Karn's rule,
// doubling on expiry) within [rto_us_min, rto_us_max]. On a busy 2-core
// machine most timeouts are spurious (the peer was descheduled, not the
// frames lost), so a timeout does not resend the whole window: it enters
// recovery and resends the oldest frame alone; each ack that advances lets
// twice as many more go (slow start), until everything that was in flight
// at the timeout is acknowledged. A spurious timeout then costs one frame
// (the peer acks everything it had), a lost tail costs log2(tail) round
// trips. No new data is sent during recovery.
#ifndef BLIZZARD_TRANSPORT_DPDK_SEND_STREAM_H_
#define BLIZZARD_TRANSPORT_DPDK_SEND_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "transport/dpdk/frame_format.h"
#include "transport/tcp/byte_ring.h"

namespace blizzard::transport::dpdk {

inline constexpr int64_t kNeverUs = std::numeric_limits<int64_t>::max();

struct SendStreamOptions {
  size_t queue_bytes_max = 64u << 20;    // Record bytes (4 + payload each).
  size_t message_bytes_max = 64u << 20;  // Largest payload Enqueue accepts.
  size_t payload_bytes_max = 1368;       // Per frame (PayloadBytesMax(mtu)).
  uint32_t window_frames = 128;          // Unacknowledged frames, at most.
  int64_t rto_us_min = 2000;
  int64_t rto_us_max = 200000;
};

// One frame the stream wants sent; its payload is written into the caller's
// buffer.
struct OutgoingFrame {
  // The data fields: kind (messages or fragment), seq, base_seq (the oldest
  // unacknowledged frame: the peer's resync point), message_id,
  // message_bytes, fragment_index/count, message_count, payload_bytes. The
  // caller fills addressing, node ids, epoch and acks.
  FrameHeader header;
  bool retransmission = false;
  // Messages whose last byte this frame carries (first transmission only).
  uint32_t messages_completed = 0;
};

struct SendStreamStats {
  uint64_t retransmissions = 0;  // Frames sent again.
  uint64_t timeouts = 0;         // Retransmission timer expiries.
  uint64_t nack_rewinds = 0;     // Go-back-N restarts caused by a NACK.
};

class SendStream {
 public:
  explicit SendStream(const SendStreamOptions& options);
  SendStream(SendStream&&) = default;

  // Copies one message into the queue. InvalidArgument if it exceeds
  // message_bytes_max; ResourceExhausted if the queue is not empty and the
  // record would take it past queue_bytes_max.
  absl::Status Enqueue(absl::Span<const uint8_t> payload);

  // True if Next would produce a frame at `now_us` (something to resend, a
  // timeout due, or new data within the window).
  bool Ready(int64_t now_us) const;

  // Produces the next frame: first any retransmission due, else new data if
  // the window allows. Writes its payload to `payload` (at least
  // payload_bytes_max bytes). False when nothing may be sent now.
  bool Next(int64_t now_us, absl::Span<uint8_t> payload, OutgoingFrame* out);

  // Applies the peer's acknowledgement: every frame below `ack_seq` arrived.
  // With `nack`, the peer also reports a gap at ack_seq: resend from there
  // (once per round trip: later NACKs for the same gap are ignored).
  // False, and no change, if ack_seq acknowledges frames never sent.
  bool OnAck(Seq ack_seq, bool nack, int64_t now_us);

  // When the retransmission timer fires (kNeverUs if nothing is in flight).
  int64_t DeadlineUs() const;

  size_t queued_bytes() const { return ring_.size(); }
  Seq next_seq() const { return next_seq_; }
  Seq acked_seq() const { return acked_seq_; }
  bool recovering() const { return recovering_; }
  // Every queued message was sent and acknowledged.
  bool idle() const { return ring_.empty() && acked_seq_ == next_seq_; }
  int64_t rto_us() const { return rto_us_; }
  int64_t srtt_us() const { return srtt_us_; }
  const SendStreamStats& stats() const { return stats_; }

 private:
  struct Entry {
    FrameHeader header;       // Data fields only; base_seq set at emission.
    uint64_t stream_pos = 0;  // Stream offset of the frame's first byte.
    int64_t sent_us = 0;      // First transmission.
    bool retransmitted = false;
  };

  // A frame is waiting to be resent and recovery (if any) lets it go.
  bool ResendAllowed() const {
    return send_seq_ < next_seq_ && (!recovering_ || send_seq_ < recovery_limit_);
  }
  uint32_t RecordBytesAt(uint64_t stream_pos) const;
  void BuildNewEntry(Entry* entry, uint32_t* messages_completed);
  void Emit(const Entry& entry, absl::Span<uint8_t> payload,
            OutgoingFrame* out) const;
  void SampleRtt(int64_t sample_us);
  Entry& EntryFor(Seq seq) { return table_[seq % table_.size()]; }
  const Entry& EntryFor(Seq seq) const { return table_[seq % table_.size()]; }

  SendStreamOptions options_;
  tcp::ByteRing ring_;
  // Stream offsets (bytes since the stream began): the ring holds
  // [released_pos_, released_pos_ + ring_.size()); build_pos_ is the first
  // byte not yet in any frame.
  uint64_t released_pos_ = 0;
  uint64_t build_pos_ = 0;
  uint64_t next_message_id_ = 0;  // Of the record at build_pos_.
  // A record being cut into fragments (its prefix is behind build_pos_).
  bool fragmenting_ = false;
  uint64_t fragment_message_id_ = 0;
  uint32_t fragment_message_bytes_ = 0;
  uint32_t fragment_count_ = 0;
  uint32_t fragment_index_next_ = 0;
  uint32_t fragment_offset_ = 0;

  std::vector<Entry> table_;  // Frames [acked_seq_, next_seq_), by seq.
  Seq next_seq_ = 0;   // Sequence number of the next new frame.
  Seq acked_seq_ = 0;  // Every frame below is acknowledged.
  Seq send_seq_ = 0;   // Next frame to transmit; < next_seq_ while resending.

  int64_t srtt_us_ = 0;  // 0: no sample yet.
  int64_t rttvar_us_ = 0;
  int64_t rto_base_us_;  // From the RTT estimate, without back-off.
  int64_t rto_us_;       // rto_base_us_ doubled per consecutive timeout.
  int64_t deadline_us_ = kNeverUs;
  Seq last_rewind_seq_ = 0;
  int64_t last_rewind_us_ = -1;
  // Recovery after a timeout (see the top of this file).
  bool recovering_ = false;
  Seq recovery_end_ = 0;    // next_seq_ at the timeout.
  Seq recovery_limit_ = 0;  // Resend frames below this for now.
  uint32_t recovery_burst_ = 1;
  SendStreamStats stats_;
};

}  // namespace blizzard::transport::dpdk

#endif  // BLIZZARD_TRANSPORT_DPDK_SEND_STREAM_H_
