#include "transport/dpdk/receive_stream.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "transport/dpdk/test_frames.h"

namespace blizzard::transport::dpdk {
namespace {

using Outcome = ReceiveStream::Outcome;

constexpr uint64_t kEpoch = 77;

using testing::Records;

FrameHeader Messages(Seq seq, uint64_t message_id, uint16_t count,
                     size_t payload_bytes, uint64_t epoch = kEpoch) {
  FrameHeader h;
  h.kind = kKindMessages;
  h.src_epoch = epoch;
  h.seq = seq;
  h.message_id = message_id;
  h.fragment_count = 1;
  h.message_count = count;
  h.payload_bytes = static_cast<uint16_t>(payload_bytes);
  return h;
}

FrameHeader Fragment(Seq seq, uint64_t message_id, uint32_t index,
                     uint32_t count, uint32_t message_bytes,
                     size_t payload_bytes, uint64_t epoch = kEpoch) {
  FrameHeader h;
  h.kind = kKindFragment;
  h.src_epoch = epoch;
  h.seq = seq;
  h.message_id = message_id;
  h.message_bytes = message_bytes;
  h.fragment_index = index;
  h.fragment_count = count;
  h.message_count = 1;
  h.payload_bytes = static_cast<uint16_t>(payload_bytes);
  return h;
}

class ReceiveStreamTest : public ::testing::Test {
 protected:
  ReceiveStreamTest() : stream_(1000, /*reassembly_timeout_us=*/5000) {}

  Outcome Give(const FrameHeader& h, const std::vector<uint8_t>& payload,
               int64_t now = 0) {
    return stream_.OnData(h, payload, now, [&](absl::Span<const uint8_t> m) {
      got_.emplace_back(m.begin(), m.end());
    });
  }
  Outcome GiveMessages(Seq seq, uint64_t id,
                       const std::vector<std::vector<uint8_t>>& messages,
                       uint64_t epoch = kEpoch) {
    const std::vector<uint8_t> payload = Records(messages);
    return Give(Messages(seq, id, static_cast<uint16_t>(messages.size()),
                         payload.size(), epoch),
                payload);
  }

  ReceiveStream stream_;
  std::vector<std::vector<uint8_t>> got_;
};

TEST_F(ReceiveStreamTest, DeliversInSequenceAndAcknowledges) {
  EXPECT_EQ(stream_.epoch(), 0u);
  EXPECT_EQ(GiveMessages(0, 0, {{1}, {}, {2, 3}}), Outcome::kAccepted);
  EXPECT_EQ(got_, (std::vector<std::vector<uint8_t>>{{1}, {}, {2, 3}}));
  EXPECT_EQ(stream_.epoch(), kEpoch);
  EXPECT_EQ(stream_.expected_seq(), 1u);
  EXPECT_TRUE(stream_.ack_due());
  EXPECT_FALSE(stream_.nack_due());
  stream_.AckSent();
  EXPECT_FALSE(stream_.ack_due());
  EXPECT_EQ(GiveMessages(1, 3, {{4}}), Outcome::kAccepted);
  EXPECT_EQ(got_.size(), 4u);
}

TEST_F(ReceiveStreamTest, DuplicatesAreAcknowledgedAgainGapsNacked) {
  ASSERT_EQ(GiveMessages(0, 0, {{1}}), Outcome::kAccepted);
  stream_.AckSent();
  EXPECT_EQ(GiveMessages(0, 0, {{1}}), Outcome::kDuplicate);
  EXPECT_TRUE(stream_.ack_due());  // Our ack may have been lost.
  EXPECT_FALSE(stream_.nack_due());
  EXPECT_EQ(GiveMessages(2, 2, {{3}}), Outcome::kOutOfOrder);
  EXPECT_TRUE(stream_.nack_due());
  EXPECT_EQ(stream_.expected_seq(), 1u);
  EXPECT_EQ(got_.size(), 1u);
  EXPECT_EQ(GiveMessages(1, 1, {{2}}), Outcome::kAccepted);
  EXPECT_FALSE(stream_.nack_due());  // The gap is filled.
  EXPECT_EQ(stream_.stats().duplicates, 1u);
  EXPECT_EQ(stream_.stats().out_of_order, 1u);
}

TEST_F(ReceiveStreamTest, ReassemblesFragments) {
  std::vector<uint8_t> message(250);
  for (size_t i = 0; i < message.size(); ++i) message[i] = static_cast<uint8_t>(i);
  for (uint32_t i = 0; i < 3; ++i) {
    const size_t begin = i * 100, end = std::min<size_t>(begin + 100, 250);
    std::vector<uint8_t> piece(message.begin() + begin, message.begin() + end);
    EXPECT_EQ(Give(Fragment(i, 0, i, 3, 250, piece.size()), piece),
              Outcome::kAccepted);
    EXPECT_EQ(stream_.reassembling(), i < 2);
  }
  ASSERT_EQ(got_.size(), 1u);
  EXPECT_EQ(got_[0], message);
  // A message alone in one fragment (too big for a record of its own).
  std::vector<uint8_t> whole(99, 5);
  EXPECT_EQ(Give(Fragment(3, 1, 0, 1, 99, 99), whole), Outcome::kAccepted);
  EXPECT_EQ(got_.back(), whole);
}

TEST_F(ReceiveStreamTest, MalformedContentIsRejectedButTheStreamGoesOn) {
  // Records that overflow the payload.
  std::vector<uint8_t> payload = Records({{1, 2, 3}});
  payload[0] = 200;
  EXPECT_EQ(Give(Messages(0, 0, 1, payload.size()), payload),
            Outcome::kRejected);
  // Bytes left over after the announced records.
  payload = Records({{1}, {2}});
  EXPECT_EQ(Give(Messages(1, 0, 1, payload.size()), payload),
            Outcome::kRejected);
  // A record longer than message_bytes_max.
  payload = Records({std::vector<uint8_t>(1001, 0)});
  EXPECT_EQ(Give(Messages(2, 0, 1, payload.size()), payload),
            Outcome::kRejected);
  EXPECT_TRUE(got_.empty());
  // The message id sequence restarts at the next good frame...
  EXPECT_EQ(GiveMessages(3, 10, {{1}}), Outcome::kAccepted);
  // ... and is enforced from then on.
  EXPECT_EQ(GiveMessages(4, 12, {{1}}), Outcome::kRejected);
  EXPECT_EQ(stream_.stats().rejected, 4u);
  EXPECT_EQ(stream_.expected_seq(), 5u);  // All acknowledged: never resent.
}

TEST_F(ReceiveStreamTest, BrokenFragmentSequencesAreDiscarded) {
  std::vector<uint8_t> piece(100, 1);
  // Index skipped.
  ASSERT_EQ(Give(Fragment(0, 0, 0, 3, 250, 100), piece), Outcome::kAccepted);
  EXPECT_EQ(Give(Fragment(1, 0, 2, 3, 250, 100), piece), Outcome::kRejected);
  EXPECT_FALSE(stream_.reassembling());
  EXPECT_EQ(stream_.stats().reassembly_failures, 1u);
  // Larger than message_bytes_max.
  EXPECT_EQ(Give(Fragment(2, 1, 0, 20, 2000, 100), piece), Outcome::kRejected);
  // Its remaining fragments are dropped quietly.
  EXPECT_EQ(Give(Fragment(3, 1, 1, 20, 2000, 100), piece), Outcome::kAccepted);
  EXPECT_EQ(stream_.stats().reassembly_failures, 1u);
  // The last fragment arrives before the bytes add up.
  ASSERT_EQ(Give(Fragment(4, 2, 0, 2, 250, 100), piece), Outcome::kAccepted);
  EXPECT_EQ(Give(Fragment(5, 2, 1, 2, 250, 100), piece), Outcome::kRejected);
  // A whole message interrupts a reassembly.
  ASSERT_EQ(Give(Fragment(6, 3, 0, 2, 150, 100), piece), Outcome::kAccepted);
  EXPECT_EQ(GiveMessages(7, 4, {{9}}), Outcome::kAccepted);
  EXPECT_EQ(got_.size(), 1u);
  EXPECT_EQ(stream_.stats().reassembly_failures, 3u);
}

TEST_F(ReceiveStreamTest, ANewEpochRestartsTheStreamAtItsBase) {
  std::vector<uint8_t> piece(100, 1);
  ASSERT_EQ(Give(Fragment(0, 0, 0, 3, 250, 100), piece), Outcome::kAccepted);
  // The peer restarted: its new stream starts at seq 0 again.
  EXPECT_EQ(GiveMessages(0, 0, {{7}}, /*epoch=*/78), Outcome::kAccepted);
  EXPECT_EQ(stream_.epoch(), 78u);
  EXPECT_EQ(stream_.stats().epochs_adopted, 2u);
  EXPECT_EQ(stream_.stats().reassembly_failures, 1u);
  EXPECT_EQ(got_.size(), 1u);
}

TEST_F(ReceiveStreamTest, JoiningMidMessageSkipsItsRest) {
  // We restarted; the peer's oldest unacknowledged frame is fragment 1 of 3.
  std::vector<uint8_t> piece(100, 1);
  FrameHeader h = Fragment(40, 5, 1, 3, 250, 100);
  h.base_seq = 40;
  EXPECT_EQ(Give(h, piece), Outcome::kAccepted);
  h = Fragment(41, 5, 2, 3, 250, 50);
  h.base_seq = 40;
  EXPECT_EQ(Give(h, std::vector<uint8_t>(50, 1)), Outcome::kAccepted);
  EXPECT_TRUE(got_.empty());
  EXPECT_EQ(stream_.stats().reassembly_failures, 1u);  // Once per message.
  FrameHeader next = Messages(42, 6, 1, 5);
  next.base_seq = 40;
  EXPECT_EQ(Give(next, Records({{3}})), Outcome::kAccepted);
  EXPECT_EQ(got_.size(), 1u);
}

TEST_F(ReceiveStreamTest, StalledReassemblyTimesOut) {
  std::vector<uint8_t> piece(100, 1);
  ASSERT_EQ(Give(Fragment(0, 0, 0, 3, 250, 100), piece, 1000),
            Outcome::kAccepted);
  EXPECT_EQ(stream_.DeadlineUs(), 6000);
  stream_.Expire(5999);
  EXPECT_TRUE(stream_.reassembling());
  stream_.Expire(6000);
  EXPECT_FALSE(stream_.reassembling());
  EXPECT_EQ(stream_.DeadlineUs(), kNeverUs);
  EXPECT_EQ(stream_.stats().reassembly_failures, 1u);
}

TEST_F(ReceiveStreamTest, FollowsABaseAheadOfWhatItExpects) {
  ASSERT_EQ(GiveMessages(0, 0, {{1}}), Outcome::kAccepted);
  FrameHeader h = Messages(9, 5, 1, 5);
  h.base_seq = 9;  // The sender gave up on 1..8 (a correct one never does).
  EXPECT_EQ(Give(h, Records({{2}})), Outcome::kAccepted);
  EXPECT_EQ(stream_.expected_seq(), 10u);
  EXPECT_EQ(got_.size(), 2u);
}

TEST(ReceiveStreamLargeTest, LargeMessagesReturnTheirPages) {
  ReceiveStream stream(16u << 20, 1000000);
  const size_t bytes = 8u << 20, piece = 8192;
  std::vector<uint8_t> chunk(piece, 3);
  size_t delivered = 0;
  const uint32_t count = static_cast<uint32_t>(bytes / piece);
  for (uint32_t i = 0; i < count; ++i) {
    FrameHeader h = Fragment(i, 0, i, count, bytes, piece);
    ASSERT_EQ(stream.OnData(h, chunk, 0,
                            [&](absl::Span<const uint8_t> m) {
                              delivered = m.size();
                              EXPECT_EQ(m[bytes - 1], 3);
                            }),
              Outcome::kAccepted);
  }
  EXPECT_EQ(delivered, bytes);
}

}  // namespace
}  // namespace blizzard::transport::dpdk
