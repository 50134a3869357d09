#include "transport/dpdk/send_stream.h"

#include <algorithm>
#include <cstring>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"

namespace blizzard::transport::dpdk {
namespace {

// Messages are at most kMessageBytesMax (64 MiB) and frames carry at least
// PayloadBytesMax(kMtuBytesMin) bytes, so counts and lengths fit in u32.
static_assert(kMessageBytesMax <= UINT32_MAX);

// A packed frame names its message count in a u16.
constexpr uint32_t kPackedMessagesMax = UINT16_MAX;

}  // namespace

SendStream::SendStream(const SendStreamOptions& options)
    : options_(options),
      // An empty queue takes one maximal message, so the ring may need to
      // hold one record of message_bytes_max even when the bound is lower.
      ring_(std::max(options.queue_bytes_max,
                     kRecordPrefixBytes + options.message_bytes_max)),
      table_(options.window_frames),
      rto_base_us_(options.rto_us_min),
      rto_us_(options.rto_us_min) {
  ABSL_RAW_CHECK(options.window_frames > 0, "window_frames must be > 0");
  ABSL_RAW_CHECK(options.payload_bytes_max > kRecordPrefixBytes &&
                     options.payload_bytes_max <= UINT16_MAX,
                 "payload_bytes_max out of range");
  ABSL_RAW_CHECK(options.message_bytes_max <= kMessageBytesMax,
                 "message_bytes_max above the interface limit");
  ABSL_RAW_CHECK(0 < options.rto_us_min && options.rto_us_min <= options.rto_us_max,
                 "need 0 < rto_us_min <= rto_us_max");
}

absl::Status SendStream::Enqueue(absl::Span<const uint8_t> payload) {
  if (payload.size() > options_.message_bytes_max) {
    return absl::InvalidArgumentError(
        absl::StrFormat("message of %d bytes exceeds message_bytes_max %d",
                        payload.size(), options_.message_bytes_max));
  }
  const size_t record_bytes = kRecordPrefixBytes + payload.size();
  if (!ring_.empty() &&
      ring_.size() + record_bytes > options_.queue_bytes_max) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "send queue full (%d bytes queued or unacknowledged)", ring_.size()));
  }
  const uint32_t length = static_cast<uint32_t>(payload.size());
  uint8_t prefix[kRecordPrefixBytes];
  std::memcpy(prefix, &length, sizeof(prefix));
  const bool appended = ring_.Append(prefix, payload);
  ABSL_RAW_CHECK(appended, "send queue bound checked above");
  return absl::OkStatus();
}

bool SendStream::Ready(int64_t now_us) const {
  if (acked_seq_ < next_seq_ && now_us >= deadline_us_) return true;
  if (ResendAllowed()) return true;
  if (recovering_) return false;  // No new data until recovered.
  const bool window_open = next_seq_ - acked_seq_ < table_.size();
  return window_open && build_pos_ < released_pos_ + ring_.size();
}

uint32_t SendStream::RecordBytesAt(uint64_t stream_pos) const {
  uint8_t prefix[kRecordPrefixBytes];
  ring_.Peek(stream_pos - released_pos_, absl::MakeSpan(prefix));
  uint32_t length;
  std::memcpy(&length, prefix, sizeof(length));
  ABSL_RAW_CHECK(length <= options_.message_bytes_max, "corrupt send record");
  return length;
}

void SendStream::BuildNewEntry(Entry* e, uint32_t* messages_completed) {
  const uint64_t end = released_pos_ + ring_.size();
  const size_t room = options_.payload_bytes_max;
  *messages_completed = 0;
  if (!fragmenting_) {
    const uint32_t first = RecordBytesAt(build_pos_);
    if (kRecordPrefixBytes + first > room) {
      // Too large for one frame: cut it, starting after its prefix.
      fragmenting_ = true;
      fragment_message_id_ = next_message_id_;
      fragment_message_bytes_ = first;
      fragment_count_ = static_cast<uint32_t>((first + room - 1) / room);
      fragment_index_next_ = 0;
      fragment_offset_ = 0;
      build_pos_ += kRecordPrefixBytes;
    } else {
      // Pack whole records while they fit.
      size_t bytes = 0;
      uint32_t count = 0;
      while (build_pos_ + bytes < end && count < kPackedMessagesMax) {
        const size_t record = kRecordPrefixBytes + RecordBytesAt(build_pos_ + bytes);
        if (bytes + record > room) break;
        bytes += record;
        ++count;
      }
      ABSL_RAW_CHECK(count >= 1, "a record that fits was not packed");
      *e = Entry{};
      e->stream_pos = build_pos_;
      e->header.kind = kKindMessages;
      e->header.message_id = next_message_id_;
      e->header.fragment_count = 1;
      e->header.message_count = static_cast<uint16_t>(count);
      e->header.payload_bytes = static_cast<uint16_t>(bytes);
      build_pos_ += bytes;
      next_message_id_ += count;
      *messages_completed = count;
      return;
    }
  }
  const uint32_t chunk = static_cast<uint32_t>(
      std::min<size_t>(room, fragment_message_bytes_ - fragment_offset_));
  ABSL_RAW_CHECK(chunk > 0 && build_pos_ + chunk <= end,
                 "fragment past the queued bytes");
  *e = Entry{};
  e->stream_pos = build_pos_;
  e->header.kind = kKindFragment;
  e->header.message_id = fragment_message_id_;
  e->header.message_bytes = fragment_message_bytes_;
  e->header.fragment_index = fragment_index_next_;
  e->header.fragment_count = fragment_count_;
  e->header.message_count = 1;
  e->header.payload_bytes = static_cast<uint16_t>(chunk);
  build_pos_ += chunk;
  fragment_offset_ += chunk;
  ++fragment_index_next_;
  if (fragment_offset_ == fragment_message_bytes_) {
    ABSL_RAW_CHECK(fragment_index_next_ == fragment_count_,
                   "fragment count disagrees with the bytes cut");
    fragmenting_ = false;
    ++next_message_id_;
    *messages_completed = 1;
  }
}

void SendStream::Emit(const Entry& e, absl::Span<uint8_t> payload,
                      OutgoingFrame* out) const {
  const uint16_t bytes = e.header.payload_bytes;
  ABSL_RAW_CHECK(payload.size() >= bytes, "payload buffer too small");
  ABSL_RAW_CHECK(e.stream_pos >= released_pos_, "frame bytes already released");
  ring_.Peek(e.stream_pos - released_pos_, payload.first(bytes));
  out->header = e.header;
  out->header.base_seq = acked_seq_;
}

bool SendStream::Next(int64_t now_us, absl::Span<uint8_t> payload,
                      OutgoingFrame* out) {
  if (acked_seq_ < next_seq_ && now_us >= deadline_us_) {
    // Nothing acknowledged for a whole timeout: probe with the oldest frame
    // and back off, so a dead peer costs one frame per rto_us_max.
    ++stats_.timeouts;
    send_seq_ = acked_seq_;
    recovering_ = true;
    recovery_end_ = next_seq_;
    recovery_burst_ = 1;
    recovery_limit_ = acked_seq_ + 1;
    rto_us_ = std::min(rto_us_ * 2, options_.rto_us_max);
    deadline_us_ = now_us + rto_us_;
    last_rewind_seq_ = acked_seq_;
    last_rewind_us_ = now_us;
  }
  if (ResendAllowed()) {
    Entry& e = EntryFor(send_seq_);
    ABSL_RAW_CHECK(e.header.seq == send_seq_, "retransmission table out of step");
    e.retransmitted = true;
    Emit(e, payload, out);
    out->retransmission = true;
    out->messages_completed = 0;
    ++send_seq_;
    ++stats_.retransmissions;
    return true;
  }
  if (recovering_) return false;
  if (next_seq_ - acked_seq_ >= table_.size()) return false;  // Window full.
  if (build_pos_ == released_pos_ + ring_.size()) return false;  // All framed.
  Entry& e = EntryFor(next_seq_);
  uint32_t completed = 0;
  BuildNewEntry(&e, &completed);
  e.header.seq = next_seq_;
  e.sent_us = now_us;
  Emit(e, payload, out);
  out->retransmission = false;
  out->messages_completed = completed;
  ++next_seq_;
  send_seq_ = next_seq_;
  if (deadline_us_ == kNeverUs) deadline_us_ = now_us + rto_us_;
  return true;
}

void SendStream::SampleRtt(int64_t sample_us) {
  sample_us = std::max<int64_t>(sample_us, 1);
  if (srtt_us_ == 0) {
    srtt_us_ = sample_us;
    rttvar_us_ = sample_us / 2;
  } else {
    const int64_t error = sample_us > srtt_us_ ? sample_us - srtt_us_
                                               : srtt_us_ - sample_us;
    rttvar_us_ = (3 * rttvar_us_ + error) / 4;
    srtt_us_ = (7 * srtt_us_ + sample_us) / 8;
  }
  rto_base_us_ = std::clamp(srtt_us_ + 4 * rttvar_us_, options_.rto_us_min,
                            options_.rto_us_max);
}

bool SendStream::OnAck(Seq ack_seq, bool nack, int64_t now_us) {
  if (ack_seq > next_seq_) return false;
  if (ack_seq > acked_seq_) {
    const Entry& last = EntryFor(ack_seq - 1);
    ABSL_RAW_CHECK(last.header.seq == ack_seq - 1, "acked frame not in the table");
    // Karn: only frames sent once give an unambiguous round-trip sample.
    if (!last.retransmitted) SampleRtt(now_us - last.sent_us);
    const uint64_t release_to = last.stream_pos + last.header.payload_bytes;
    ABSL_RAW_CHECK(release_to >= released_pos_ &&
                       release_to <= released_pos_ + ring_.size() &&
                       release_to <= build_pos_,
                   "ack releases bytes never framed");
    ring_.Consume(release_to - released_pos_);
    released_pos_ = release_to;
    acked_seq_ = ack_seq;
    if (send_seq_ < acked_seq_) send_seq_ = acked_seq_;
    if (recovering_) {
      if (acked_seq_ >= recovery_end_) {
        recovering_ = false;
      } else {
        recovery_burst_ = std::min<uint32_t>(recovery_burst_ * 2,
                                             options_.window_frames);
        recovery_limit_ = acked_seq_ + recovery_burst_;
      }
    }
    rto_us_ = rto_base_us_;
    deadline_us_ = acked_seq_ < next_seq_ ? now_us + rto_us_ : kNeverUs;
  }
  if (nack && ack_seq == acked_seq_ && ack_seq < send_seq_) {
    // Frames sent before our last rewind keep producing NACKs for the same
    // gap for about a round trip; only a NACK after that means the resent
    // frame was lost too.
    const bool repeat = last_rewind_seq_ == ack_seq && last_rewind_us_ >= 0 &&
                        now_us - last_rewind_us_ < rto_base_us_;
    if (!repeat) {
      // The peer is alive and dropped everything after the gap: resend it
      // all, recovery or not.
      recovering_ = false;
      send_seq_ = ack_seq;
      last_rewind_seq_ = ack_seq;
      last_rewind_us_ = now_us;
      ++stats_.nack_rewinds;
    }
  }
  ABSL_RAW_CHECK(acked_seq_ <= send_seq_ && send_seq_ <= next_seq_,
                 "sequence numbers out of order");
  return true;
}

int64_t SendStream::DeadlineUs() const {
  return acked_seq_ < next_seq_ ? deadline_us_ : kNeverUs;
}

}  // namespace blizzard::transport::dpdk
