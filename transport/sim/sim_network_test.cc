#include "transport/sim/sim_network.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <memory>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "transport/sim/splitmix64.h"
#include "transport/test_util.h"

namespace blizzard::transport {
namespace {

struct Delivery {
  int64_t time_us;
  NodeId to;
  NodeId from;
  std::vector<uint8_t> payload;
  bool operator==(const Delivery&) const = default;
};

// N endpoints 1..n on one network, all peers of each other.
class SimCluster {
 public:
  SimCluster(uint64_t seed, int n, const SimOptions& options = SimOptions())
      : network(seed, options) {
    for (NodeId id = 1; id <= static_cast<NodeId>(n); ++id) ids.push_back(id);
    for (NodeId id : ids) Start(id);
  }
  void Start(NodeId id, uint64_t cluster_id = 0) {
    std::vector<NodeId> peers;
    for (NodeId peer : ids) {
      if (peer != id) peers.push_back(peer);
    }
    auto endpoint = network.CreateEndpoint(id, peers, cluster_id);
    ASSERT_TRUE(endpoint.ok()) << endpoint.status();
    nodes[id] = std::move(*endpoint);
  }
  Transport& node(NodeId id) { return *nodes.at(id); }
  absl::Status Send(NodeId from, NodeId to, uint64_t tag) {
    uint8_t bytes[8];
    std::memcpy(bytes, &tag, 8);
    return node(from).Send(to, bytes);
  }
  void PollAll() {
    for (auto& [id, transport] : nodes) {
      if (!transport) continue;
      const NodeId to = id;
      ASSERT_TRUE(transport
                      ->Poll([&](NodeId from, absl::Span<const uint8_t> p) {
                        trace.push_back({network.now_us(), to, from,
                                         std::vector<uint8_t>(p.begin(),
                                                              p.end())});
                      })
                      .ok());
    }
  }
  // Jumps the clock from delivery to delivery until nothing is in flight.
  void Drain() {
    while (auto next = network.NextDeliveryUs()) {
      network.AdvanceTo(std::max(*next, network.now_us()));
      PollAll();
    }
  }
  std::vector<uint64_t> Tags(NodeId to, NodeId from) const {
    std::vector<uint64_t> tags;
    for (const Delivery& d : trace) {
      if (d.to == to && d.from == from) {
        uint64_t tag;
        std::memcpy(&tag, d.payload.data(), 8);
        tags.push_back(tag);
      }
    }
    return tags;
  }

  SimNetwork network;  // First: outlives the endpoints.
  std::vector<NodeId> ids;
  std::map<NodeId, std::unique_ptr<Transport>> nodes;
  std::vector<Delivery> trace;
};

SimOptions Faulty() {
  SimOptions options;
  options.drop_probability = 0.1;
  options.duplicate_probability = 0.1;
  options.reorder_probability = 0.2;
  options.reorder_delay_us_max = 5000;
  options.delay_us_min = 50;
  options.delay_us_max = 800;
  return options;
}

// A busy three-node run with every fault on; returns the delivery trace.
std::vector<Delivery> RunFaultyScenario(uint64_t seed) {
  SimCluster c(seed, 3, Faulty());
  SplitMix64 workload(seed ^ 0xabcdef);
  for (int step = 0; step < 300; ++step) {
    for (NodeId from : c.ids) {
      NodeId to = c.ids[workload.Uniform(0, 2)];
      if (to == from) continue;
      EXPECT_TRUE(c.node(from)
                      .Send(to, testing::MakePayload(from, to, step,
                                                     workload.Uniform(0, 64)))
                      .ok());
    }
    if (step == 100) c.network.Cut(1, 2);
    if (step == 150) c.network.Isolate(3);
    if (step == 200) c.network.HealAll();
    c.network.Advance(workload.Uniform(1, 300));
    c.PollAll();
  }
  c.Drain();
  return c.trace;
}

TEST(SplitMix64Test, MatchesTheReferenceSequence) {
  SplitMix64 random(0);
  EXPECT_EQ(random.Next(), 0xe220a8397b1dcdafull);
  EXPECT_EQ(random.Next(), 0x6e789e6aa1b965f4ull);
  EXPECT_EQ(random.Next(), 0x06c45d188009454full);
}

TEST(SplitMix64Test, UniformStaysInRange) {
  SplitMix64 random(1);
  for (int i = 0; i < 10000; ++i) {
    uint64_t x = random.Uniform(5, 9);
    ASSERT_GE(x, 5u);
    ASSERT_LE(x, 9u);
    double d = random.NextDouble();
    ASSERT_GE(d, 0.0);
    ASSERT_LT(d, 1.0);
  }
  EXPECT_EQ(random.Uniform(3, 3), 3u);
}

TEST(SimNetworkTest, SameSeedSameTraceDifferentSeedDifferentTrace) {
  const std::vector<Delivery> a = RunFaultyScenario(42);
  const std::vector<Delivery> b = RunFaultyScenario(42);
  const std::vector<Delivery> c = RunFaultyScenario(43);
  ASSERT_GT(a.size(), 300u);
  EXPECT_TRUE(a == b) << "seed=42 did not replay";
  EXPECT_FALSE(a == c);
}

TEST(SimNetworkTest, DeliversExactlyWhenTheDelayHasPassed) {
  SimCluster c(1, 2);  // Default: fixed 100 us delay, no faults.
  ASSERT_TRUE(c.Send(1, 2, 7).ok());
  EXPECT_EQ(c.network.InFlight(), 1u);
  EXPECT_EQ(c.network.NextDeliveryUs(), 100);
  c.network.Advance(99);
  c.PollAll();
  EXPECT_TRUE(c.trace.empty());
  c.network.Advance(1);
  c.PollAll();
  ASSERT_EQ(c.trace.size(), 1u);
  EXPECT_EQ(c.trace[0].time_us, 100);
  EXPECT_EQ(c.Tags(2, 1), std::vector<uint64_t>{7});
  EXPECT_EQ(c.network.InFlight(), 0u);
  EXPECT_FALSE(c.network.NextDeliveryUs().has_value());
}

TEST(SimNetworkTest, LinksAreFifoUnlessReordered) {
  for (double reorder : {0.0, 0.3}) {
    SCOPED_TRACE(absl::StrFormat("reorder=%f seed=5", reorder));
    SimOptions options;
    options.delay_us_min = 10;
    options.delay_us_max = 1000;
    options.reorder_probability = reorder;
    options.reorder_delay_us_max = 2000;
    SimCluster c(5, 2, options);
    for (uint64_t i = 0; i < 1000; ++i) {
      ASSERT_TRUE(c.Send(1, 2, i).ok());
      c.network.Advance(5);
      c.PollAll();
    }
    c.Drain();
    std::vector<uint64_t> tags = c.Tags(2, 1);
    ASSERT_EQ(tags.size(), 1000u);
    EXPECT_EQ(std::is_sorted(tags.begin(), tags.end()), reorder == 0.0);
    EXPECT_EQ(c.network.stats().reordered > 0, reorder > 0.0);
  }
}

TEST(SimNetworkTest, DropsAtTheConfiguredRate) {
  SimOptions options;
  options.drop_probability = 0.25;
  SimCluster c(11, 2, options);
  constexpr int kMessages = 4000;
  for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(c.Send(1, 2, i).ok());
  c.Drain();
  const SimStats& stats = c.network.stats();
  EXPECT_EQ(stats.sent, kMessages);
  EXPECT_EQ(stats.delivered + stats.dropped_random, stats.sent);
  EXPECT_GT(stats.dropped_random, kMessages * 22 / 100);
  EXPECT_LT(stats.dropped_random, kMessages * 28 / 100);
  std::vector<uint64_t> tags = c.Tags(2, 1);
  EXPECT_TRUE(std::is_sorted(tags.begin(), tags.end()));  // Gaps, no reorder.
}

TEST(SimNetworkTest, DuplicatesAtTheConfiguredRate) {
  for (double p : {0.0, 1.0}) {
    SimOptions options;
    options.duplicate_probability = p;
    SimCluster c(3, 2, options);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(c.Send(1, 2, i).ok());
    c.Drain();
    EXPECT_EQ(c.Tags(2, 1).size(), p == 0.0 ? 100u : 200u);
    EXPECT_EQ(c.network.stats().duplicated, p == 0.0 ? 0u : 100u);
    EXPECT_EQ(c.network.InFlight(), 0u);
  }
}

TEST(SimNetworkTest, CutsAreDirectedAndHeal) {
  SimCluster c(9, 3);
  auto exchange = [&](uint64_t tag) {
    c.trace.clear();
    for (NodeId from : c.ids) {
      for (NodeId to : c.ids) {
        if (from != to) {
          EXPECT_TRUE(c.Send(from, to, tag).ok());
        }
      }
    }
    c.Drain();
    std::set<std::pair<NodeId, NodeId>> links;  // (from, to) that delivered.
    for (const Delivery& d : c.trace) links.insert({d.from, d.to});
    return links;
  };
  using Links = std::set<std::pair<NodeId, NodeId>>;
  const Links all = exchange(0);
  EXPECT_EQ(all.size(), 6u);

  c.network.Cut(1, 2);  // Asymmetric: 2 -> 1 still works.
  Links expected = all;
  expected.erase({1, 2});
  EXPECT_EQ(exchange(1), expected);
  EXPECT_FALSE(c.network.LinkUp(1, 2));
  EXPECT_TRUE(c.network.LinkUp(2, 1));
  c.network.Heal(1, 2);
  EXPECT_EQ(exchange(2), all);

  c.network.Partition(std::vector<NodeId>{1}, std::vector<NodeId>{2, 3});
  EXPECT_EQ(exchange(3), (Links{{2, 3}, {3, 2}}));
  c.network.HealAll();
  c.network.Isolate(3);
  EXPECT_EQ(exchange(4), (Links{{1, 2}, {2, 1}}));
  c.network.Rejoin(3);
  EXPECT_EQ(exchange(5), all);
}

TEST(SimNetworkTest, ACutLosesWhatIsInFlight) {
  SimCluster c(9, 2);
  ASSERT_TRUE(c.Send(1, 2, 1).ok());
  c.network.Cut(1, 2);
  c.Drain();
  EXPECT_TRUE(c.trace.empty());
  EXPECT_EQ(c.network.stats().dropped_partition, 1u);
}

TEST(SimNetworkTest, ADownNodeLosesItsMessagesAndCanRestart) {
  SimCluster c(2, 2);
  ASSERT_TRUE(c.Send(1, 2, 1).ok());  // In flight when 2 crashes: lost.
  c.nodes[2].reset();
  ASSERT_TRUE(c.Send(1, 2, 2).ok());  // Sent while 2 is down: lost.
  EXPECT_EQ(c.network.stats().dropped_node_down, 2u);
  EXPECT_FALSE(c.network.NextDeliveryUs().has_value());
  c.Start(2);
  auto again = c.network.CreateEndpoint(2, std::vector<NodeId>{1});
  EXPECT_TRUE(absl::IsFailedPrecondition(again.status()));
  ASSERT_TRUE(c.Send(1, 2, 3).ok());
  c.Drain();
  EXPECT_EQ(c.Tags(2, 1), std::vector<uint64_t>{3});
}

TEST(SimNetworkTest, ForeignClusterIsRefused) {
  SimCluster c(2, 2);
  c.nodes[2].reset();
  c.Start(2, /*cluster_id=*/8);
  ASSERT_TRUE(c.Send(1, 2, 1).ok());
  c.Drain();
  EXPECT_TRUE(c.trace.empty());
  EXPECT_EQ(c.node(2).Stats().handshakes_rejected, 1u);
  EXPECT_EQ(c.network.stats().dropped_cluster, 1u);
}

TEST(SimNetworkTest, InterfaceDetailsAndLimits) {
  SimOptions options;
  options.in_flight_messages_max = 5;
  SimCluster c(2, 2, options);
  EXPECT_EQ(c.node(1).ReadinessFd(), -1);
  EXPECT_EQ(c.node(1).ListenPort(), 0);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.Send(1, 2, i).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(c.Send(1, 2, 5)));
  EXPECT_TRUE(absl::IsInvalidArgument(c.Send(1, 3, 0)));
  SimOptions bad;
  bad.drop_probability = 1.5;
  EXPECT_TRUE(absl::IsInvalidArgument(c.network.set_options(bad)));
  bad = SimOptions();
  bad.delay_us_min = 10;
  bad.delay_us_max = 5;
  EXPECT_TRUE(absl::IsInvalidArgument(c.network.set_options(bad)));
  c.Drain();
  const TransportStats stats1 = c.node(1).Stats();
  const TransportStats stats2 = c.node(2).Stats();
  EXPECT_EQ(stats1.messages_sent, 5u);
  EXPECT_EQ(stats1.bytes_sent, 40u);
  EXPECT_EQ(stats1.messages_dropped, 1u);
  EXPECT_EQ(stats2.messages_received, 5u);
  EXPECT_EQ(stats2.bytes_received, 40u);
}

}  // namespace
}  // namespace blizzard::transport
