#include "transport/dpdk/send_stream.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace blizzard::transport::dpdk {
namespace {

constexpr size_t kRoom = 100;  // Payload bytes per frame in these tests.

SendStreamOptions Options(uint32_t window = 8) {
  SendStreamOptions o;
  o.queue_bytes_max = 10000;
  o.message_bytes_max = 5000;
  o.payload_bytes_max = kRoom;
  o.window_frames = window;
  o.rto_us_min = 1000;
  o.rto_us_max = 8000;
  return o;
}

std::vector<uint8_t> Bytes(size_t n, uint8_t first) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(first + i);
  return v;
}

struct Sent {
  OutgoingFrame frame;
  std::vector<uint8_t> payload;
};

bool Next(SendStream& s, int64_t now, Sent* out) {
  std::vector<uint8_t> buffer(kRoom, 0xee);
  if (!s.Next(now, absl::MakeSpan(buffer), &out->frame)) return false;
  out->payload.assign(buffer.begin(),
                      buffer.begin() + out->frame.header.payload_bytes);
  return true;
}

TEST(SendStreamTest, PacksWholeRecordsThatFit) {
  SendStream s(Options());
  ASSERT_TRUE(s.Enqueue(Bytes(10, 1)).ok());
  ASSERT_TRUE(s.Enqueue({}).ok());
  ASSERT_TRUE(s.Enqueue(Bytes(30, 2)).ok());
  ASSERT_TRUE(s.Enqueue(Bytes(60, 3)).ok());  // 4+60 does not fit after 52.
  Sent a;
  ASSERT_TRUE(Next(s, 0, &a));
  EXPECT_EQ(a.frame.header.kind, kKindMessages);
  EXPECT_EQ(a.frame.header.seq, 0u);
  EXPECT_EQ(a.frame.header.message_id, 0u);
  EXPECT_EQ(a.frame.header.message_count, 3);
  EXPECT_EQ(a.frame.messages_completed, 3u);
  EXPECT_EQ(a.payload.size(), 14u + 4u + 34u);
  uint32_t length;
  std::memcpy(&length, a.payload.data(), 4);
  EXPECT_EQ(length, 10u);
  EXPECT_EQ(a.payload[4], 1);
  Sent b;
  ASSERT_TRUE(Next(s, 0, &b));
  EXPECT_EQ(b.frame.header.seq, 1u);
  EXPECT_EQ(b.frame.header.message_id, 3u);
  EXPECT_EQ(b.frame.header.message_count, 1);
  EXPECT_FALSE(Next(s, 0, &b));  // Nothing left.
}

TEST(SendStreamTest, CutsLargeRecordsIntoExactFragments) {
  SendStream s(Options());
  const std::vector<uint8_t> big = Bytes(250, 7);
  ASSERT_TRUE(s.Enqueue(Bytes(5, 1)).ok());
  ASSERT_TRUE(s.Enqueue(big).ok());
  ASSERT_TRUE(s.Enqueue(Bytes(97, 2)).ok());  // 4 + 97 > 100: one fragment.
  Sent first;
  ASSERT_TRUE(Next(s, 0, &first));
  EXPECT_EQ(first.frame.header.message_count, 1);  // The big one does not fit.
  std::vector<uint8_t> joined;
  for (uint32_t i = 0; i < 3; ++i) {
    Sent f;
    ASSERT_TRUE(Next(s, 0, &f));
    EXPECT_EQ(f.frame.header.kind, kKindFragment);
    EXPECT_EQ(f.frame.header.message_id, 1u);
    EXPECT_EQ(f.frame.header.message_bytes, 250u);
    EXPECT_EQ(f.frame.header.fragment_index, i);
    EXPECT_EQ(f.frame.header.fragment_count, 3u);
    EXPECT_EQ(f.payload.size(), i < 2 ? 100u : 50u);
    EXPECT_EQ(f.frame.messages_completed, i == 2 ? 1u : 0u);
    joined.insert(joined.end(), f.payload.begin(), f.payload.end());
  }
  EXPECT_EQ(joined, big);
  Sent last;
  ASSERT_TRUE(Next(s, 0, &last));
  EXPECT_EQ(last.frame.header.kind, kKindFragment);
  EXPECT_EQ(last.frame.header.fragment_count, 1u);  // A whole message, no prefix.
  EXPECT_EQ(last.frame.header.message_id, 2u);
  EXPECT_EQ(last.payload, Bytes(97, 2));
}

TEST(SendStreamTest, WindowBoundsUnacknowledgedFrames) {
  SendStream s(Options(/*window=*/4));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(s.Enqueue(Bytes(90, 0)).ok());
  Sent f;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Next(s, 0, &f));
  EXPECT_FALSE(s.Ready(0));
  EXPECT_FALSE(Next(s, 0, &f));
  ASSERT_TRUE(s.OnAck(2, false, 10));
  EXPECT_EQ(s.acked_seq(), 2u);
  ASSERT_TRUE(Next(s, 10, &f));
  EXPECT_EQ(f.frame.header.seq, 4u);
  EXPECT_EQ(f.frame.header.base_seq, 2u);
  ASSERT_TRUE(Next(s, 10, &f));
  EXPECT_FALSE(Next(s, 10, &f));
}

TEST(SendStreamTest, AcknowledgedBytesLeaveTheQueue) {
  SendStream s(Options());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s.Enqueue(Bytes(90, 0)).ok());
  EXPECT_EQ(s.queued_bytes(), 3u * 94);
  Sent f;
  while (Next(s, 0, &f)) {
  }
  EXPECT_EQ(s.queued_bytes(), 3u * 94);  // Sent is not acknowledged.
  ASSERT_TRUE(s.OnAck(2, false, 5));
  EXPECT_EQ(s.queued_bytes(), 94u);
  EXPECT_FALSE(s.OnAck(4, false, 5));  // Frame 3 was never sent.
  EXPECT_EQ(s.acked_seq(), 2u);
  ASSERT_TRUE(s.OnAck(1, false, 5));  // Stale: no effect.
  ASSERT_TRUE(s.OnAck(3, false, 5));
  EXPECT_TRUE(s.idle());
}

TEST(SendStreamTest, QueueLimits) {
  SendStreamOptions o = Options();
  o.queue_bytes_max = 300;
  SendStream s(o);
  EXPECT_TRUE(absl::IsInvalidArgument(s.Enqueue(Bytes(5001, 0))));
  ASSERT_TRUE(s.Enqueue(Bytes(5000, 0)).ok());  // Empty: a maximal message.
  EXPECT_TRUE(absl::IsResourceExhausted(s.Enqueue(Bytes(1, 0))));
  SendStream t(o);
  ASSERT_TRUE(t.Enqueue(Bytes(146, 0)).ok());
  ASSERT_TRUE(t.Enqueue(Bytes(146, 0)).ok());  // 300 bytes exactly.
  EXPECT_TRUE(absl::IsResourceExhausted(t.Enqueue({})));
}

TEST(SendStreamTest, NackRewindsOncePerRoundTrip) {
  SendStream s(Options());
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(s.Enqueue(Bytes(90, i)).ok());
  Sent f;
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Next(s, 0, &f));
  // The peer got 0 and 1, lost 2, saw 3: NACK(2).
  ASSERT_TRUE(s.OnAck(2, true, 100));
  ASSERT_TRUE(Next(s, 100, &f));
  EXPECT_EQ(f.frame.header.seq, 2u);
  EXPECT_TRUE(f.frame.retransmission);
  EXPECT_EQ(std::vector<uint8_t>(f.payload.begin() + 4, f.payload.end()),
            Bytes(90, 2));  // After its length prefix.
  ASSERT_TRUE(Next(s, 100, &f));
  EXPECT_EQ(f.frame.header.seq, 3u);
  // NACKs for the same gap from frames 4 and 5 (sent before the rewind):
  // ignored for a round trip.
  ASSERT_TRUE(s.OnAck(2, true, 200));
  ASSERT_TRUE(Next(s, 200, &f));
  EXPECT_EQ(f.frame.header.seq, 4u);
  EXPECT_EQ(s.stats().nack_rewinds, 1u);
  // Much later the same NACK means the resent frame was lost as well.
  ASSERT_TRUE(s.OnAck(2, true, 5000));
  ASSERT_TRUE(Next(s, 5000, &f));
  EXPECT_EQ(f.frame.header.seq, 2u);
  EXPECT_EQ(s.stats().nack_rewinds, 2u);
}

TEST(SendStreamTest, TimeoutProbesThenRecoversWithGrowingBursts) {
  SendStream s(Options(/*window=*/8));
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(s.Enqueue(Bytes(90, i)).ok());
  Sent f;
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(Next(s, 0, &f));
  EXPECT_EQ(s.DeadlineUs(), 1000);
  EXPECT_FALSE(s.Ready(999));
  EXPECT_TRUE(s.Ready(1000));
  ASSERT_TRUE(Next(s, 1000, &f));  // The probe: the oldest frame alone.
  EXPECT_EQ(f.frame.header.seq, 0u);
  EXPECT_TRUE(s.recovering());
  EXPECT_FALSE(Next(s, 1000, &f));
  EXPECT_EQ(s.DeadlineUs(), 3000);  // Backed off: 2 ms.
  // The tail was really lost: the peer acks only the probe.
  ASSERT_TRUE(s.OnAck(1, false, 1100));
  ASSERT_TRUE(Next(s, 1100, &f));
  EXPECT_EQ(f.frame.header.seq, 1u);
  ASSERT_TRUE(Next(s, 1100, &f));
  EXPECT_EQ(f.frame.header.seq, 2u);
  EXPECT_FALSE(Next(s, 1100, &f));  // A burst of 2.
  ASSERT_TRUE(s.OnAck(3, false, 1200));
  for (Seq want = 3; want < 7; ++want) {  // A burst of 4.
    ASSERT_TRUE(Next(s, 1200, &f));
    EXPECT_EQ(f.frame.header.seq, want);
  }
  EXPECT_FALSE(Next(s, 1200, &f));
  ASSERT_TRUE(s.OnAck(8, false, 1300));  // Everything in flight: recovered.
  EXPECT_FALSE(s.recovering());
  ASSERT_TRUE(Next(s, 1300, &f));
  EXPECT_EQ(f.frame.header.seq, 8u);  // New data again.
  EXPECT_FALSE(f.frame.retransmission);
  EXPECT_EQ(s.stats().timeouts, 1u);
}

TEST(SendStreamTest, SpuriousTimeoutCostsOneFrame) {
  SendStream s(Options(/*window=*/8));
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(s.Enqueue(Bytes(90, i)).ok());
  Sent f;
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(Next(s, 0, &f));
  ASSERT_TRUE(Next(s, 1000, &f));  // Probe.
  ASSERT_TRUE(s.OnAck(8, false, 1500));  // The peer had it all.
  EXPECT_FALSE(s.recovering());
  EXPECT_TRUE(s.idle());
  EXPECT_EQ(s.stats().retransmissions, 1u);
}

TEST(SendStreamTest, TimeoutBacksOffToTheMaximum) {
  SendStream s(Options());
  ASSERT_TRUE(s.Enqueue(Bytes(10, 0)).ok());
  Sent f;
  ASSERT_TRUE(Next(s, 0, &f));
  int64_t now = 0;
  std::vector<int64_t> gaps;
  for (int i = 0; i < 6; ++i) {
    const int64_t deadline = s.DeadlineUs();
    gaps.push_back(deadline - now);
    now = deadline;
    ASSERT_TRUE(Next(s, now, &f));
  }
  EXPECT_EQ(gaps, (std::vector<int64_t>{1000, 2000, 4000, 8000, 8000, 8000}));
}

TEST(SendStreamTest, RoundTripEstimateUsesOnlyFramesSentOnce) {
  SendStream s(Options());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s.Enqueue(Bytes(90, i)).ok());
  Sent f;
  ASSERT_TRUE(Next(s, 0, &f));
  ASSERT_TRUE(s.OnAck(1, false, 400));
  EXPECT_EQ(s.srtt_us(), 400);
  ASSERT_TRUE(Next(s, 500, &f));
  ASSERT_TRUE(Next(s, 1500, &f));  // Seq 2 fresh... and a timeout for 1:
  ASSERT_TRUE(Next(s, 100000, &f));  // resent.
  ASSERT_TRUE(s.OnAck(2, false, 100100));
  EXPECT_EQ(s.srtt_us(), 400);  // Karn: a resent frame gives no sample.
}

}  // namespace
}  // namespace blizzard::transport::dpdk
