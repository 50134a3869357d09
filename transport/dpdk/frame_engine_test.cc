// The DPDK transport's protocol end to end, without DPDK: FrameEngines on a
// simulated wire with seeded loss, duplication, corruption and reordering.
// The Transport contract (order, integrity, limits, handler may send) is
// checked here the way transport_contract_test checks TCP and the sim, plus
// what only a datagram transport has: retransmission, fragmentation,
// packing, restarts and hostile frames.
#include "transport/dpdk/frame_engine.h"

#include <cstring>
#include <map>
#include <tuple>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "transport/dpdk/frame_format.h"
#include "transport/dpdk/sim_wire.h"
#include "transport/dpdk/test_frames.h"
#include "transport/test_util.h"

namespace blizzard::transport::dpdk {
namespace {

using ::blizzard::transport::testing::MixedPayloadSize;
using ::blizzard::transport::testing::StreamChecker;
using testing::SimWire;
using testing::WireFaults;

constexpr uint64_t kCluster = 7;

TransportOptions Base() {
  TransportOptions options;
  options.cluster_id = kCluster;
  return options;
}

// Sends up to `per_link` messages on every link, stepping until all arrive
// or `steps_max` steps pass. Returns whether all arrived.
bool Exchange(SimWire& wire, int nodes, StreamChecker& checker,
              uint64_t per_link, int steps_max = 200000) {
  auto handler = [&](NodeId to, NodeId from, absl::Span<const uint8_t> p) {
    checker.OnReceive(to, from, p);
  };
  for (int step = 0; step < steps_max; ++step) {
    bool all_sent = true;
    for (NodeId from = 1; from <= static_cast<NodeId>(nodes); ++from) {
      for (NodeId to = 1; to <= static_cast<NodeId>(nodes); ++to) {
        if (from == to) continue;
        for (int i = 0; i < 8 && checker.sent(from, to) < per_link; ++i) {
          absl::Status s = wire.node(from).Send(to, checker.Next(from, to));
          if (absl::IsResourceExhausted(s)) break;
          EXPECT_TRUE(s.ok()) << s;
          checker.Commit(from, to);
        }
        all_sent &= checker.sent(from, to) == per_link;
      }
    }
    if (all_sent && checker.AllDelivered()) return true;
    wire.Step(handler);
  }
  return false;
}

TEST(FrameEngineTest, MixedSizesArriveIntactAndInOrderOnACleanWire) {
  constexpr uint64_t kSeed = 11;
  SimWire wire(3, Base(), EngineConfig{}, WireFaults{}, kSeed);
  StreamChecker checker(
      [](NodeId from, NodeId to, uint64_t seq) {
        return MixedPayloadSize(kSeed, from, to, seq);
      },
      /*gaps_allowed=*/false);
  ASSERT_TRUE(Exchange(wire, 3, checker, 60));
  EXPECT_TRUE(checker.errors().empty()) << checker.errors().front();
  for (NodeId id = 1; id <= 3; ++id) {
    const TransportStats s = wire.node(id).stats();
    EXPECT_EQ(s.messages_sent, 120u);
    EXPECT_EQ(s.messages_received, 120u);
    EXPECT_EQ(s.retransmissions, 0u);
    EXPECT_EQ(s.frames_rejected, 0u);
    EXPECT_EQ(s.frames_out_of_order, 0u);
    EXPECT_EQ(s.messages_dropped, 0u);
    EXPECT_EQ(s.connects, 2u);  // One stream from each peer.
  }
}

// Seed, and whether acks are delayed (EngineConfig::ack_delay_us).
class LossyWireTest
    : public ::testing::TestWithParam<std::tuple<uint64_t, bool>> {};

TEST_P(LossyWireTest, EveryMessageArrivesOnceInOrderDespiteFaults) {
  const uint64_t seed = std::get<0>(GetParam());
  SCOPED_TRACE(absl::StrFormat("seed=%d delayed_acks=%d", seed,
                               std::get<1>(GetParam())));
  WireFaults faults;
  faults.drop = 0.03;
  faults.duplicate = 0.01;
  faults.corrupt = 0.01;
  faults.swap = 0.01;
  EngineConfig config;
  if (std::get<1>(GetParam())) config.ack_delay_us = 500;
  SimWire wire(3, Base(), config, faults, seed);
  StreamChecker checker(
      [seed](NodeId from, NodeId to, uint64_t seq) {
        // Up to 64 KiB here: 1 MiB messages over a 3% lossy wire with
        // go-back-N take long to simulate and prove nothing more.
        return MixedPayloadSize(seed, from, to, seq) % (64u << 10);
      },
      /*gaps_allowed=*/false);
  ASSERT_TRUE(Exchange(wire, 3, checker, 150));
  EXPECT_TRUE(checker.errors().empty()) << checker.errors().front();
  uint64_t retransmissions = 0, bad = 0, out_of_order = 0;
  for (NodeId id = 1; id <= 3; ++id) {
    const TransportStats s = wire.node(id).stats();
    retransmissions += s.retransmissions;
    bad += s.frames_bad_checksum;
    out_of_order += s.frames_out_of_order;
    EXPECT_EQ(s.messages_received, 300u);
    EXPECT_EQ(s.reassembly_failures, 0u);
  }
  EXPECT_GT(retransmissions, 0u);
  EXPECT_GT(bad, 0u);
  EXPECT_GT(out_of_order, 0u);
}

INSTANTIATE_TEST_SUITE_P(Seeds, LossyWireTest,
                         ::testing::Combine(::testing::Values(1, 2, 3, 4, 5),
                                            ::testing::Bool()));

// A request, then (50 us later, as a node answers after its own loop
// iteration) the response: with delayed acks the response carries the ack
// of the request, and the ack of the response goes alone only after the
// delay; without, each side also sends a pure ack at once.
TEST(FrameEngineTest, DelayedAcksRideOnTheResponse) {
  for (const int64_t delay_us : {int64_t{0}, int64_t{500}}) {
    SCOPED_TRACE(absl::StrFormat("ack_delay_us=%d", delay_us));
    EngineConfig config;
    config.ack_delay_us = delay_us;
    SimWire wire(2, Base(), config, WireFaults{}, 1);
    std::vector<uint8_t> message(100, 7);
    int received_by_2 = 0, received_by_1 = 0;
    auto handler = [&](NodeId to, NodeId, absl::Span<const uint8_t>) {
      ++(to == 2 ? received_by_2 : received_by_1);
    };
    ASSERT_TRUE(wire.node(1).Send(2, message).ok());
    for (int i = 0; i < 100 && received_by_2 == 0; ++i) wire.Step(handler);
    ASSERT_EQ(received_by_2, 1);
    for (int i = 0; i < 5; ++i) wire.Step(handler);  // 50 us.
    ASSERT_TRUE(wire.node(2).Send(1, message).ok());
    for (int i = 0; i < 100 && received_by_1 == 0; ++i) wire.Step(handler);
    ASSERT_EQ(received_by_1, 1);
    EXPECT_EQ(wire.frames_from(2), delay_us > 0 ? 1u : 2u);
    const int64_t answered_us = wire.now_us();
    // The response's ack: alone, after the delay (the engine's deadline
    // says when, for an idle loop's timer).
    if (delay_us > 0) {
      EXPECT_LE(wire.node(1).DeadlineUs(), answered_us + delay_us);
      EXPECT_FALSE(wire.node(2).Idle(1));
    }
    for (int i = 0; i < 100; ++i) wire.Step(handler);  // 1 ms.
    EXPECT_EQ(wire.frames_from(1), 2u);  // The request and one ack.
    EXPECT_TRUE(wire.node(1).Idle(2));
    EXPECT_TRUE(wire.node(2).Idle(1));
    EXPECT_EQ(wire.node(1).stats().retransmissions, 0u);
    EXPECT_EQ(wire.node(2).stats().retransmissions, 0u);
  }
}

// An ack delayed longer than rto_us_min: the sender's timeout waits for it
// (its floor is rto_us_min + ack_delay_us), so a request that is never
// answered costs one pure ack and no retransmission.
TEST(FrameEngineTest, AckDelayAboveTheMinimumRtoCausesNoTimeout) {
  EngineConfig config;
  config.rto_us_min = 2000;
  config.ack_delay_us = 3000;
  SimWire wire(2, Base(), config, WireFaults{}, 1);
  std::vector<uint8_t> message(100, 7);
  int received = 0;
  auto handler = [&](NodeId, NodeId, absl::Span<const uint8_t>) { ++received; };
  ASSERT_TRUE(wire.node(1).Send(2, message).ok());
  for (int i = 0; i < 100 && received == 0; ++i) wire.Step(handler);
  ASSERT_EQ(received, 1);
  const int64_t received_us = wire.now_us();
  // The sender's deadline is past the peer's ack delay.
  EXPECT_GE(wire.node(1).DeadlineUs(), received_us + config.ack_delay_us);
  for (int i = 0; i < 600; ++i) wire.Step(handler);  // 6 ms.
  EXPECT_TRUE(wire.node(1).Idle(2));
  EXPECT_EQ(wire.frames_from(1), 1u);  // No probe.
  EXPECT_EQ(wire.frames_from(2), 1u);  // One pure ack, after the delay.
  EXPECT_EQ(wire.node(1).stats().retransmit_timeouts, 0u);
  EXPECT_EQ(wire.node(1).stats().retransmissions, 0u);
}

// One-way bulk traffic: the receiver has nothing to piggyback on, so it
// acks every window_frames / 4 frames at once and the sender never stalls
// on its window waiting for a delayed ack.
TEST(FrameEngineTest, DelayedAcksKeepABulkSendersWindowOpen) {
  EngineConfig config;
  config.ack_delay_us = 1000;
  config.window_frames = 32;
  SimWire wire(2, Base(), config, WireFaults{}, 1);
  std::vector<uint8_t> big(1300, 1);  // One frame each.
  int received = 0;
  int sent = 0;
  int steps = 0;
  for (; steps < 1000 && received < 400; ++steps) {
    while (sent < 400 && wire.node(1).Send(2, big).ok()) ++sent;
    wire.Step([&](NodeId, NodeId, absl::Span<const uint8_t>) { ++received; });
  }
  EXPECT_EQ(received, 400);
  // ~32 frames per window, acked every 8: far below one ack delay per window
  // (400 / 32 windows x 100 steps of 10 us).
  EXPECT_LT(steps, 200);
  EXPECT_EQ(wire.node(1).stats().retransmissions, 0u);
}

TEST(FrameEngineTest, RejectsUnknownPeerSelfAndOversizedMessage) {
  TransportOptions base = Base();
  base.message_bytes_max = 1000;
  SimWire wire(2, base, EngineConfig{}, WireFaults{}, 1);
  std::vector<uint8_t> ok(1000, 1), big(1001, 1);
  EXPECT_TRUE(absl::IsInvalidArgument(wire.node(1).Send(99, ok)));
  EXPECT_TRUE(absl::IsInvalidArgument(wire.node(1).Send(1, ok)));
  EXPECT_TRUE(absl::IsInvalidArgument(wire.node(1).Send(2, big)));
  EXPECT_TRUE(wire.node(1).Send(2, ok).ok());
  int received = 0;
  for (int i = 0; i < 100 && received == 0; ++i) {
    wire.Step([&](NodeId, NodeId, absl::Span<const uint8_t> p) {
      EXPECT_EQ(p.size(), 1000u);
      ++received;
    });
  }
  EXPECT_EQ(received, 1);
}

TEST(FrameEngineTest, FullQueueIsResourceExhaustedThenDrains) {
  TransportOptions base = Base();
  base.send_queue_bytes_max = 64u << 10;
  SimWire wire(2, base, EngineConfig{}, WireFaults{}, 1);
  StreamChecker checker([](NodeId, NodeId, uint64_t) { return 1000; },
                        /*gaps_allowed=*/false);
  absl::Status s;
  while ((s = wire.node(1).Send(2, checker.Next(1, 2))).ok()) {
    checker.Commit(1, 2);
    ASSERT_LT(checker.sent(1, 2), 1000u) << "queue never filled";
  }
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  // 64 KiB of 1004-byte records (the 4-byte length prefix counts).
  EXPECT_EQ(checker.sent(1, 2), (64u << 10) / 1004);
  EXPECT_EQ(wire.node(1).stats().messages_dropped, 1u);
  for (int i = 0; i < 10000 && !checker.AllDelivered(); ++i) {
    wire.Step([&](NodeId to, NodeId from, absl::Span<const uint8_t> p) {
      checker.OnReceive(to, from, p);
    });
  }
  EXPECT_TRUE(checker.AllDelivered());
  EXPECT_TRUE(checker.errors().empty()) << checker.errors().front();
  // Acknowledged bytes leave the queue: it takes messages again.
  for (int i = 0; i < 100 && !wire.node(1).Idle(2); ++i) wire.Step({});
  EXPECT_EQ(wire.node(1).QueuedBytes(2), 0u);
  EXPECT_TRUE(wire.node(1).Send(2, checker.Next(1, 2)).ok());
}

TEST(FrameEngineTest, EmptyQueueTakesOneMaximalMessage) {
  TransportOptions base = Base();
  base.message_bytes_max = 1u << 20;
  base.send_queue_bytes_max = 4096;
  SimWire wire(2, base, EngineConfig{}, WireFaults{}, 1);
  std::vector<uint8_t> big(1u << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE(wire.node(1).Send(2, big).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(wire.node(1).Send(2, big)));
  std::vector<std::vector<uint8_t>> got;
  for (int i = 0; i < 10000 && got.empty(); ++i) {
    wire.Step([&](NodeId, NodeId, absl::Span<const uint8_t> p) {
      got.emplace_back(p.begin(), p.end());
    });
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0] == big);
  // 1 MiB in frames of PayloadBytesMax(1500) bytes: one fragment each.
  const uint64_t fragments = ((1u << 20) + 1367) / 1368;
  EXPECT_GE(wire.frames_from(1), fragments);
}

TEST(FrameEngineTest, HandlerMaySend) {
  SimWire wire(2, Base(), EngineConfig{}, WireFaults{}, 1);
  int pongs = 0;
  auto handler = [&](NodeId to, NodeId from, absl::Span<const uint8_t> p) {
    if (to == 2) {
      ASSERT_TRUE(wire.node(2).Send(from, p).ok());  // Echo from OnFrame.
    } else {
      int round;
      ASSERT_EQ(p.size(), sizeof(round));
      std::memcpy(&round, p.data(), sizeof(round));
      EXPECT_EQ(round, pongs);
      ++pongs;
    }
  };
  int pings = 0;
  for (int i = 0; i < 100000 && pongs < 100; ++i) {
    if (pings == pongs) {
      uint8_t bytes[sizeof(pings)];
      std::memcpy(bytes, &pings, sizeof(pings));
      ASSERT_TRUE(wire.node(1).Send(2, bytes).ok());
      ++pings;
    }
    wire.Step(handler);
  }
  EXPECT_EQ(pongs, 100);
}

TEST(FrameEngineTest, SmallMessagesArePackedIntoFewFrames) {
  SimWire wire(2, Base(), EngineConfig{}, WireFaults{}, 1);
  std::vector<uint8_t> small(10, 3);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(wire.node(1).Send(2, small).ok());
  int received = 0;
  for (int i = 0; i < 1000 && received < 1000; ++i) {
    wire.Step([&](NodeId, NodeId, absl::Span<const uint8_t> p) {
      EXPECT_EQ(p.size(), 10u);
      ++received;
    });
  }
  EXPECT_EQ(received, 1000);
  // 14-byte records, 1368 payload bytes a frame: 97 messages per frame.
  EXPECT_LE(wire.frames_from(1), (1000 + 96) / 97 + 1);
}

TEST(FrameEngineTest, SizesAroundTheFramePayloadBoundary) {
  SimWire wire(2, Base(), EngineConfig{}, WireFaults{}, 1);
  const size_t room = PayloadBytesMax(1500);
  std::vector<size_t> sizes = {0,        1,        room - 5, room - 4,
                               room - 3, room - 1, room,     room + 1,
                               2 * room, 2 * room + 1, 3 * room - 4};
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::vector<uint8_t> m(sizes[i], static_cast<uint8_t>(i + 1));
    ASSERT_TRUE(wire.node(1).Send(2, m).ok());
  }
  std::vector<std::vector<uint8_t>> got;
  for (int i = 0; i < 1000 && got.size() < sizes.size(); ++i) {
    wire.Step([&](NodeId, NodeId, absl::Span<const uint8_t> p) {
      got.emplace_back(p.begin(), p.end());
    });
  }
  ASSERT_EQ(got.size(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(got[i], std::vector<uint8_t>(sizes[i], static_cast<uint8_t>(i + 1)))
        << "message " << i << " of " << sizes[i] << " bytes";
  }
}

TEST(FrameEngineTest, DeadPeerCostsAWindowThenOneProbePerTimeout) {
  EngineConfig config;
  config.window_frames = 16;
  config.rto_us_min = 1000;
  config.rto_us_max = 100000;
  SimWire wire(2, Base(), config, WireFaults{}, 1);
  wire.Stop(2);
  std::vector<uint8_t> m(1000, 1);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(wire.node(1).Send(2, m).ok());
  // One simulated second.
  for (int i = 0; i < 100000; ++i) wire.Step({}, 10);
  const TransportStats s = wire.node(1).stats();
  // 16 frames, then a probe per timeout: 1, 2, 4, ... 100 ms, then 100 ms.
  EXPECT_EQ(wire.frames_from(1), 16 + s.retransmit_timeouts);
  EXPECT_GE(s.retransmit_timeouts, 10u);
  EXPECT_LE(s.retransmit_timeouts, 20u);
  // The peer comes back: everything is delivered, in order.
  wire.Start(2);
  int received = 0;
  for (int i = 0; i < 100000 && received < 100; ++i) {
    wire.Step([&](NodeId to, NodeId, absl::Span<const uint8_t> p) {
      EXPECT_EQ(to, 2u);
      EXPECT_EQ(p.size(), 1000u);
      ++received;
    });
  }
  EXPECT_EQ(received, 100);
}

TEST(FrameEngineTest, PeerRestartResumesBothStreams) {
  constexpr uint64_t kSeed = 5;
  WireFaults faults;
  faults.drop = 0.01;
  SimWire wire(2, Base(), EngineConfig{}, faults, kSeed);
  StreamChecker checker(
      [](NodeId from, NodeId to, uint64_t seq) {
        return MixedPayloadSize(kSeed, from, to, seq) % 20000 + 16;
      },
      /*gaps_allowed=*/true);  // A crash loses what was in flight.
  // A restarted node is a new process: it may get again what its previous
  // instance received but had not acknowledged yet. Those are skipped here
  // (the checker spans both instances); anything else must be in order.
  std::map<NodeId, bool> resyncing;
  uint64_t redelivered = 0;
  auto handler = [&](NodeId to, NodeId from, absl::Span<const uint8_t> p) {
    uint64_t seq;
    std::memcpy(&seq, p.data(), sizeof(seq));
    if (resyncing[to] && seq < checker.expected(from, to)) {
      ++redelivered;
      return;
    }
    resyncing[to] = false;
    checker.OnReceive(to, from, p);
  };
  auto send_some = [&](NodeId from, NodeId to) {
    for (int i = 0; i < 4; ++i) {
      if (!wire.node(from).Send(to, checker.Next(from, to)).ok()) break;
      checker.Commit(from, to);
    }
  };
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 300; ++i) {
      send_some(1, 2);
      send_some(2, 1);
      wire.Step(handler);
    }
    const NodeId crashing = round % 2 == 0 ? 2 : 1;
    wire.Stop(crashing);  // Crash mid-stream.
    wire.Start(crashing);
    resyncing[crashing] = true;
  }
  // After the restarts, both directions work again without loss.
  const uint64_t sent_12 = checker.sent(1, 2), sent_21 = checker.sent(2, 1);
  for (int i = 0; i < 300; ++i) {
    send_some(1, 2);
    send_some(2, 1);
    wire.Step(handler);
  }
  for (int i = 0; i < 100000 && !(wire.node(1).Idle(2) && wire.node(2).Idle(1));
       ++i) {
    wire.Step(handler);
  }
  EXPECT_TRUE(checker.errors().empty()) << checker.errors().front();
  EXPECT_EQ(checker.expected(1, 2), checker.sent(1, 2));
  EXPECT_EQ(checker.expected(2, 1), checker.sent(2, 1));
  EXPECT_GT(checker.sent(1, 2), sent_12);
  EXPECT_GT(checker.sent(2, 1), sent_21);
  // Node 1, itself restarted in round 1, then saw node 2 restart once.
  EXPECT_EQ(wire.node(1).stats().disconnects, 1u);
}

TEST(FrameEngineTest, StalledReassemblyIsDiscardedAfterTheTimeout) {
  EngineConfig config;
  config.reassembly_timeout_us = 50000;
  SimWire wire(2, Base(), config, WireFaults{}, 1);
  // Let only the first few fragments of a large message through.
  int data_frames = 0;
  wire.SetTap([&](NodeId from, std::vector<uint8_t>& frame) {
    if (from == 1 && ++data_frames > 3) frame.resize(20);  // Not ours: lost.
  });
  std::vector<uint8_t> big(100000, 9);
  ASSERT_TRUE(wire.node(1).Send(2, big).ok());
  for (int i = 0; i < 100; ++i) wire.Step({});
  ASSERT_NE(wire.node(2).receiver(1), nullptr);
  EXPECT_TRUE(wire.node(2).receiver(1)->reassembling());
  wire.Stop(1);  // The sender dies mid-message.
  for (int i = 0; i < 10000; ++i) wire.Step({});  // 100 ms.
  EXPECT_FALSE(wire.node(2).receiver(1)->reassembling());
  EXPECT_EQ(wire.node(2).stats().reassembly_failures, 1u);
  EXPECT_EQ(wire.node(2).stats().messages_received, 0u);
}

// Frames crafted by hand: each must be counted under its reason, dropped,
// and leave the real stream unharmed.
class HostileFrameTest : public ::testing::Test {
 protected:
  HostileFrameTest() : wire_(2, Base(), EngineConfig{}, WireFaults{}, 1) {}

  // A well-formed messages frame from `src` to node 2 carrying one message.
  std::vector<uint8_t> Frame(FrameHeader h, Addressing a,
                             std::vector<uint8_t> message = {1, 2, 3}) {
    return testing::SealFrame(a, h, testing::Records({message}));
  }
  FrameHeader Header() {
    FrameHeader h;
    h.kind = kKindMessages;
    h.cluster_id = kCluster;
    h.src_node = 1;
    h.dst_node = 2;
    h.src_epoch = 424242;
    h.fragment_count = 1;
    h.message_count = 1;
    return h;
  }
  Addressing From1() {
    Addressing a;
    a.src_mac = *ParseMac(SimWire::Mac(1));
    a.dst_mac = *ParseMac(SimWire::Mac(2));
    a.src_port = a.dst_port = 7400;
    return a;
  }
  void Deliver() {
    for (int i = 0; i < 10; ++i) {
      wire_.Step([&](NodeId, NodeId, absl::Span<const uint8_t> p) {
        delivered_.emplace_back(p.begin(), p.end());
      });
    }
  }

  SimWire wire_;
  std::vector<std::vector<uint8_t>> delivered_;
};

TEST_F(HostileFrameTest, EachKindIsCountedAndDropped) {
  wire_.Stop(1);  // Only injected frames from "node 1".
  const TransportStats before = wire_.node(2).stats();
  auto inject = [&](std::vector<uint8_t> f) { wire_.Inject(std::move(f)); };

  FrameHeader h = Header();
  h.cluster_id = 8;
  inject(Frame(h, From1()));  // Another cluster.
  h = Header();
  h.src_node = 9;
  inject(Frame(h, From1()));  // Unknown node.
  h = Header();
  h.dst_node = 3;
  inject(Frame(h, From1()));  // For another node.
  Addressing spoofed = From1();
  spoofed.src_mac = *ParseMac("02:66:66:66:66:66");
  inject(Frame(Header(), spoofed));  // Source MAC is not node 1's.
  Deliver();
  TransportStats s = wire_.node(2).stats();
  EXPECT_EQ(s.frames_foreign - before.frames_foreign, 4u);
  EXPECT_EQ(s.frames_rejected - before.frames_rejected, 4u);

  std::vector<uint8_t> f = Frame(Header(), From1());
  f.back() ^= 1;
  inject(f);  // Payload damaged: XXH3.
  f = Frame(Header(), From1());
  f[kEthernetHeaderBytes + 8] ^= 1;
  inject(f);  // IPv4 header damaged (TTL): IP checksum.
  f = Frame(Header(), From1());
  f[kEthernetHeaderBytes + kIpv4HeaderBytes + kUdpHeaderBytes + 4] = 2;
  inject(f);  // Version 2 (its checksum is then wrong too: version first).
  f = Frame(Header(), From1());
  f.resize(f.size() - 1);
  inject(f);  // Truncated.
  Deliver();
  s = wire_.node(2).stats();
  EXPECT_EQ(s.frames_bad_checksum - before.frames_bad_checksum, 2u);
  EXPECT_EQ(s.frames_rejected - before.frames_rejected, 8u);

  const uint64_t ignored = s.frames_ignored;
  Addressing other_port = From1();
  other_port.dst_port = 7401;
  inject(Frame(Header(), other_port));
  Addressing other_mac = From1();
  other_mac.dst_mac = *ParseMac("02:00:00:00:00:07");
  inject(Frame(Header(), other_mac));
  f = Frame(Header(), From1());
  f[12] = 0x08;
  f[13] = 0x06;  // ARP.
  inject(f);
  inject({1, 2, 3});  // A runt.
  inject(std::vector<uint8_t>(9000, 0xff));
  Deliver();
  s = wire_.node(2).stats();
  EXPECT_EQ(s.frames_ignored - ignored, 5u);
  EXPECT_EQ(s.frames_rejected - before.frames_rejected, 8u);
  EXPECT_TRUE(delivered_.empty());

  // Checksummed but inconsistent content: two records announced, one sent.
  // In sequence, so it is acknowledged (never resent) and dropped.
  h = Header();
  h.message_count = 2;
  inject(Frame(h, From1(), {4, 5, 6, 7, 8}));
  Deliver();
  s = wire_.node(2).stats();
  EXPECT_EQ(s.frames_rejected - before.frames_rejected, 9u);
  EXPECT_TRUE(delivered_.empty());
  // The next frame of that stream is accepted.
  h = Header();
  h.seq = 1;
  inject(Frame(h, From1(), {42}));
  Deliver();
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_EQ(delivered_[0], std::vector<uint8_t>{42});
}

TEST_F(HostileFrameTest, AckForFramesNeverSentIsRejected) {
  const uint64_t epoch_of_1 = wire_.node(1).epoch();
  // Node 2 forges nothing; we play node 2 acking node 1's stream.
  wire_.Stop(2);
  wire_.Start(2);
  FrameHeader h;
  h.kind = kKindAck;
  h.flags = kFlagAck;
  h.cluster_id = kCluster;
  h.src_node = 2;
  h.dst_node = 1;
  h.src_epoch = 77;
  h.ack_epoch = epoch_of_1;
  h.ack_seq = 1000;  // Node 1 sent nothing yet.
  Addressing a;
  a.src_mac = *ParseMac(SimWire::Mac(2));
  a.dst_mac = *ParseMac(SimWire::Mac(1));
  a.src_port = a.dst_port = 7400;
  std::vector<uint8_t> frame(kFrameHeadersBytes);
  FinishFrame(a, h, absl::MakeSpan(frame));
  const uint64_t rejected = wire_.node(1).stats().frames_rejected;
  wire_.Inject(frame);
  for (int i = 0; i < 10; ++i) wire_.Step({});
  EXPECT_EQ(wire_.node(1).stats().frames_rejected, rejected + 1);
  EXPECT_EQ(wire_.node(1).sender(2)->acked_seq(), 0u);
}

TEST(FrameEngineCreateTest, ValidatesOptions) {
  SimWire wire(2, Base(), EngineConfig{}, WireFaults{}, 1);
  TransportOptions good = wire.OptionsFor(1);
  ASSERT_TRUE(FrameEngine::Create(good, EngineConfig{}).ok());
  auto rejects = [&](TransportOptions o, EngineConfig c = EngineConfig{}) {
    absl::StatusOr<std::unique_ptr<FrameEngine>> e = FrameEngine::Create(o, c);
    return absl::IsInvalidArgument(e.status());
  };
  TransportOptions o = good;
  o.peers[0].mac = "";
  EXPECT_TRUE(rejects(o));  // DPDK needs every peer's MAC.
  o = good;
  o.peers[0].mac = "01:00:00:00:00:02";
  EXPECT_TRUE(rejects(o));  // Multicast.
  o = good;
  o.peers[0].mac = o.mac;
  EXPECT_TRUE(rejects(o));  // Same MAC twice.
  o = good;
  o.peers[0].host = "node2.example";
  EXPECT_TRUE(rejects(o));  // No resolver.
  o = good;
  o.listen_host = "localhost";
  EXPECT_TRUE(rejects(o));
  o = good;
  o.mac = "02:00:00:00:00";
  EXPECT_TRUE(rejects(o));
  o = good;
  o.mac = "";
  EXPECT_TRUE(rejects(o));  // The port's MAC in the config is all-zero.
  EngineConfig c;
  c.port_mac = *ParseMac("02:aa:00:00:00:01");
  EXPECT_TRUE(FrameEngine::Create(o, c).ok());
  c.mtu_bytes = 500;
  EXPECT_TRUE(rejects(o, c));
  c = EngineConfig{};
  c.epoch = 0;
  EXPECT_TRUE(rejects(good, c));
  c = EngineConfig{};
  c.window_frames = 0;
  EXPECT_TRUE(rejects(good, c));
  c = EngineConfig{};
  c.ack_delay_us = -1;
  EXPECT_TRUE(rejects(good, c));
  c.ack_delay_us = kAckDelayUsMax + 1;
  EXPECT_TRUE(rejects(good, c));
  c.ack_delay_us = kAckDelayUsMax;  // Above rto_us_min: the RTO's floor grows.
  EXPECT_TRUE(FrameEngine::Create(good, c).ok());
  c = EngineConfig{};
  c.mtu_bytes = 9000;  // Jumbo frames.
  EXPECT_TRUE(FrameEngine::Create(good, c).ok());
  c.mtu_bytes = kMtuBytesMax + 1;
  EXPECT_TRUE(rejects(good, c));
  o = good;
  o.message_bytes_max = 0;
  EXPECT_TRUE(rejects(o));  // ValidateTransportOptions.
}

}  // namespace
}  // namespace blizzard::transport::dpdk
