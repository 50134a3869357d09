// The Transport contract (transport.h), checked against every implementation
// with the same tests: TCP on 127.0.0.1 and the simulated network without
// faults. Implementation-specific behaviour has its own tests.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "transport/sim/sim_network.h"
#include "transport/tcp/tcp_test_cluster.h"
#include "transport/test_util.h"
#include "transport/transport.h"

namespace blizzard::transport {
namespace {

using testing::ClusterHandler;
using testing::StepUntil;
using testing::StreamChecker;

constexpr uint64_t kSeed = 0x5eed2024;

class Harness {
 public:
  virtual ~Harness() = default;
  virtual Transport& node(NodeId id) = 0;
  // Lets the network make progress once and polls every node.
  virtual void Step(const ClusterHandler& handler) = 0;
};

class TcpHarness final : public Harness {
 public:
  TcpHarness(int n, const TransportOptions& base) : cluster_(n, base) {}
  Transport& node(NodeId id) override { return cluster_.node(id); }
  void Step(const ClusterHandler& handler) override {
    cluster_.Step(handler, /*wait_ms=*/2);
  }

 private:
  testing::TcpTestCluster cluster_;
};

class SimHarness final : public Harness {
 public:
  SimHarness(int n, const TransportOptions& base) : network_(kSeed) {
    for (NodeId id = 1; id <= static_cast<NodeId>(n); ++id) {
      TransportOptions options = base;
      options.self = id;
      for (NodeId peer = 1; peer <= static_cast<NodeId>(n); ++peer) {
        if (peer != id) options.peers.push_back({peer, "sim", 0});
      }
      auto endpoint = network_.CreateEndpoint(options);
      EXPECT_TRUE(endpoint.ok()) << endpoint.status();
      nodes_[id] = std::move(*endpoint);
    }
  }
  Transport& node(NodeId id) override { return *nodes_.at(id); }
  void Step(const ClusterHandler& handler) override {
    network_.Advance(50);
    for (auto& [id, transport] : nodes_) {
      const NodeId to = id;
      EXPECT_TRUE(transport
                      ->Poll([&](NodeId from, absl::Span<const uint8_t> p) {
                        handler(to, from, p);
                      })
                      .ok());
    }
  }

 private:
  SimNetwork network_;  // Declared first: outlives the endpoints.
  std::map<NodeId, std::unique_ptr<Transport>> nodes_;
};

class TransportContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Harness> Make(int n, TransportOptions base = {}) {
    base.cluster_id = 7;
    if (GetParam() == "tcp") return std::make_unique<TcpHarness>(n, base);
    return std::make_unique<SimHarness>(n, base);
  }
};

TEST_P(TransportContractTest, MixedSizesArriveIntactAndInOrderPerSender) {
  SCOPED_TRACE(absl::StrFormat("seed=%d", kSeed));
  constexpr int kNodes = 3;
  constexpr uint64_t kMessagesPerLink = 120;
  auto h = Make(kNodes);
  StreamChecker checker(
      [](NodeId from, NodeId to, uint64_t seq) {
        return testing::MixedPayloadSize(kSeed, from, to, seq);
      },
      /*gaps_allowed=*/false);
  auto handler = [&](NodeId to, NodeId from, absl::Span<const uint8_t> p) {
    checker.OnReceive(to, from, p);
  };
  auto send_some = [&] {
    for (NodeId from = 1; from <= kNodes; ++from) {
      for (NodeId to = 1; to <= kNodes; ++to) {
        for (int i = 0; i < 8 && from != to &&
                        checker.sent(from, to) < kMessagesPerLink;
             ++i) {
          absl::Status s = h->node(from).Send(to, checker.Next(from, to));
          if (absl::IsResourceExhausted(s)) break;
          ASSERT_TRUE(s.ok()) << s;
          checker.Commit(from, to);
        }
      }
    }
  };
  bool done = StepUntil(
      [&] {
        send_some();
        h->Step(handler);
      },
      [&] {
        for (NodeId from = 1; from <= kNodes; ++from) {
          for (NodeId to = 1; to <= kNodes; ++to) {
            if (from != to && checker.sent(from, to) < kMessagesPerLink) {
              return false;
            }
          }
        }
        return checker.AllDelivered();
      });
  ASSERT_TRUE(done) << "not all messages arrived in time";
  EXPECT_TRUE(checker.errors().empty()) << checker.errors().front();
  for (NodeId id = 1; id <= kNodes; ++id) {
    TransportStats stats = h->node(id).Stats();
    EXPECT_EQ(stats.messages_received, kMessagesPerLink * (kNodes - 1));
    EXPECT_EQ(stats.messages_sent, kMessagesPerLink * (kNodes - 1));
    EXPECT_EQ(stats.messages_dropped, 0u);
    EXPECT_EQ(stats.frames_rejected, 0u);
  }
}

TEST_P(TransportContractTest, RejectsUnknownPeerAndOversizedMessage) {
  TransportOptions base;
  base.message_bytes_max = 1000;
  auto h = Make(2, base);
  std::vector<uint8_t> ok(1000, 1), big(1001, 1);
  EXPECT_TRUE(absl::IsInvalidArgument(h->node(1).Send(99, ok)));
  EXPECT_TRUE(absl::IsInvalidArgument(h->node(1).Send(1, ok)));  // Self.
  EXPECT_TRUE(absl::IsInvalidArgument(h->node(1).Send(2, big)));
  EXPECT_TRUE(h->node(1).Send(2, ok).ok());
  uint64_t received = 0;
  ASSERT_TRUE(StepUntil(
      [&] {
        h->Step([&](NodeId, NodeId, absl::Span<const uint8_t> p) {
          EXPECT_EQ(p.size(), 1000u);
          ++received;
        });
      },
      [&] { return received == 1; }));
}

TEST_P(TransportContractTest, FullQueueIsResourceExhaustedThenDrains) {
  TransportOptions base;
  base.send_queue_bytes_max = 64u << 10;
  auto h = Make(2, base);
  StreamChecker checker([](NodeId, NodeId, uint64_t) { return 1000; },
                        /*gaps_allowed=*/false);
  // No Step: nothing leaves the queue.
  absl::Status s;
  while ((s = h->node(1).Send(2, checker.Next(1, 2))).ok()) {
    checker.Commit(1, 2);
    ASSERT_LT(checker.sent(1, 2), 1000u) << "queue never filled";
  }
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_GE(checker.sent(1, 2), 60u);  // 64 KiB of ~1 KB messages.
  EXPECT_LE(checker.sent(1, 2), 66u);
  EXPECT_EQ(h->node(1).Stats().messages_dropped, 1u);
  ASSERT_TRUE(StepUntil(
      [&] {
        h->Step([&](NodeId to, NodeId from, absl::Span<const uint8_t> p) {
          checker.OnReceive(to, from, p);
        });
      },
      [&] { return checker.AllDelivered(); }));
  EXPECT_TRUE(checker.errors().empty()) << checker.errors().front();
  EXPECT_TRUE(h->node(1).Send(2, checker.Next(1, 2)).ok());
}

TEST_P(TransportContractTest, EmptyQueueTakesOneMaximalMessage) {
  TransportOptions base;
  base.message_bytes_max = 1u << 20;
  base.send_queue_bytes_max = 4096;
  auto h = Make(2, base);
  std::vector<uint8_t> big(1u << 20, 7), small(1, 8);
  ASSERT_TRUE(h->node(1).Send(2, big).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(h->node(1).Send(2, small)));
  std::vector<size_t> sizes;
  auto handler = [&](NodeId, NodeId, absl::Span<const uint8_t> p) {
    sizes.push_back(p.size());
  };
  ASSERT_TRUE(StepUntil([&] { h->Step(handler); },
                        [&] { return sizes.size() == 1; }));
  EXPECT_EQ(sizes[0], big.size());
  ASSERT_TRUE(StepUntil(
      [&] {
        if (sizes.size() == 1) (void)h->node(1).Send(2, small);
        h->Step(handler);
      },
      [&] { return sizes.size() == 2; }));
  EXPECT_EQ(sizes[1], 1u);
}

TEST_P(TransportContractTest, HandlerMaySend) {
  auto h = Make(2);
  constexpr int kRounds = 100;
  int pongs = 0;
  auto handler = [&](NodeId to, NodeId from, absl::Span<const uint8_t> p) {
    if (to == 2) {
      ASSERT_TRUE(h->node(2).Send(from, p).ok());  // Echo from inside Poll.
    } else {
      ASSERT_EQ(p.size(), 4u);
      int round;
      std::memcpy(&round, p.data(), 4);
      EXPECT_EQ(round, pongs);
      ++pongs;
    }
  };
  int pings = 0;
  ASSERT_TRUE(StepUntil(
      [&] {
        if (pings == pongs && pings < kRounds) {
          uint8_t bytes[4];
          std::memcpy(bytes, &pings, 4);
          ASSERT_TRUE(h->node(1).Send(2, bytes).ok());
          ++pings;
        }
        h->Step(handler);
      },
      [&] { return pongs == kRounds; }));
}

INSTANTIATE_TEST_SUITE_P(Implementations, TransportContractTest,
                         ::testing::Values("tcp", "sim"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace blizzard::transport
