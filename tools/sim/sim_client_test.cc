#include "tools/sim/sim_client.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "transport/sim/sim_network.h"

namespace blizzard::sim {
namespace {

constexpr uint64_t kClient = 1001;

// One client and three scripted "nodes" that record requests.
class ClientHarness {
 public:
  explicit ClientHarness(OpMix mix = {}) : network_(3) {
    for (uint64_t id : {1, 2, 3}) nodes_[id] = *network_.CreateEndpoint(id, {kClient});
    endpoint_ = *network_.CreateEndpoint(kClient, {1, 2, 3});
    ClientOptions o;
    o.id = kClient;
    o.nodes = {1, 2, 3};
    o.keys = 2;
    o.timeout_us = 10'000;
    o.attempts_max = 3;
    o.think_us_max = 0;
    o.retry_backoff_us = 500;
    o.mix = mix;
    client_ = std::make_unique<SimClient>(o, 42, endpoint_.get(), &trace_);
  }
  ~ClientHarness() {
    client_.reset();
    endpoint_.reset();
    nodes_.clear();
  }

  // Advances to `t_us` in 100 us steps, stepping the client; returns the
  // requests each node received meanwhile.
  std::vector<std::pair<uint64_t, Command>> RunUntil(int64_t t_us, bool issue = true) {
    std::vector<std::pair<uint64_t, Command>> got;
    while (network_.now_us() < t_us) {
      network_.Advance(100);
      for (auto& [id, ep] : nodes_) {
        (void)ep->Poll([&, id = id](transport::NodeId, absl::Span<const uint8_t> b) {
          auto c = DecodeRequest(b);
          ASSERT_TRUE(c.ok());
          got.emplace_back(id, *c);
        });
      }
      client_->Step(network_.now_us(), issue);
    }
    return got;
  }
  void Answer(uint64_t node, const Reply& r) {
    const std::string bytes = EncodeReply(r);
    ASSERT_TRUE(nodes_.at(node)
                    ->Send(kClient, absl::MakeConstSpan(
                                        reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()))
                    .ok());
  }
  SimClient& client() { return *client_; }

 private:
  transport::SimNetwork network_;
  Trace trace_;
  std::map<uint64_t, std::unique_ptr<transport::Transport>> nodes_;
  std::unique_ptr<transport::Transport> endpoint_;
  std::unique_ptr<SimClient> client_;
};

TEST(SimClientTest, RetriesWithTheSameSeqAndFollowsHints) {
  ClientHarness h(OpMix{0, 1, 0, 0, 0});  // Puts only.
  auto got = h.RunUntil(300);
  ASSERT_EQ(got.size(), 1u);
  const uint64_t first_node = got[0].first;
  const Command c = got[0].second;
  EXPECT_EQ(c.seq, 1u);
  EXPECT_EQ(c.kind, OpKind::kPut);
  EXPECT_TRUE(h.client().busy());
  // Not the leader; the leader is 3 (or 2 when asked 3).
  const uint64_t leader = first_node == 3 ? 2 : 3;
  h.Answer(first_node, Reply{kClient, 1, ReplyStatus::kNotLeader, leader, {}});
  got = h.RunUntil(1000);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first, leader);
  EXPECT_EQ(got[0].second, c);  // Same command, same seq.
  // Silence: after the timeout the next node gets it, still the same seq.
  got = h.RunUntil(12'000);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].first, leader);
  EXPECT_EQ(got[0].second.seq, 1u);
  // That was attempt 3 of 3: the next timeout gives up.
  got = h.RunUntil(30'000, /*issue=*/false);
  EXPECT_TRUE(got.empty());
  EXPECT_FALSE(h.client().busy());
  ASSERT_EQ(h.client().history().size(), 1u);
  EXPECT_FALSE(h.client().history()[0].known);
  EXPECT_EQ(h.client().history_seqs()[0], 1u);
  EXPECT_TRUE(h.client().acked_writes().empty());
  EXPECT_EQ(h.client().stats().ops_unknown, 1u);
}

TEST(SimClientTest, AnOkFromAnyNodeSettlesTheOperation) {
  ClientHarness h(OpMix{0, 0, 0, 0, 1});  // Cas only.
  auto got = h.RunUntil(300);
  ASSERT_EQ(got.size(), 1u);
  const Command c = got[0].second;
  EXPECT_EQ(c.kind, OpKind::kCas);
  got = h.RunUntil(10'500);  // Timed out: retried elsewhere.
  ASSERT_EQ(got.size(), 1u);
  // The first node answers late, with an OK: the op is done.
  h.Answer(got[0].first == 1 ? 2 : 1, Reply{kClient, 1, ReplyStatus::kOk, 0, {true, ""}});
  h.RunUntil(11'000, /*issue=*/false);
  EXPECT_FALSE(h.client().busy());
  const lincheck::Operation& op = h.client().history()[0];
  EXPECT_TRUE(op.known);
  EXPECT_TRUE(op.output_ok);
  EXPECT_EQ(op.kind, lincheck::OpKind::kCas);
  EXPECT_GT(op.return_time, op.call_time);
  ASSERT_EQ(h.client().acked_writes().size(), 1u);
  EXPECT_EQ(h.client().acked_writes()[0], std::make_pair(kClient, uint64_t{1}));
}

TEST(SimClientTest, ReadsRecordTheValueAndStaleIsAFailure) {
  ClientHarness h(OpMix{1, 0, 0, 0, 0});  // Gets only.
  auto got = h.RunUntil(300);
  ASSERT_EQ(got.size(), 1u);
  h.Answer(got[0].first, Reply{kClient, 1, ReplyStatus::kOk, 0, {true, "val"}});
  got = h.RunUntil(1000);
  ASSERT_EQ(h.client().history().size(), 2u);  // The next op already started.
  EXPECT_EQ(h.client().history()[0].output_value, std::optional<std::string>("val"));
  EXPECT_TRUE(h.client().acked_writes().empty());  // Reads are not writes.
  ASSERT_EQ(got.size(), 1u);
  h.Answer(got[0].first, Reply{kClient, 2, ReplyStatus::kStale, 0, {}});
  h.RunUntil(1500, /*issue=*/false);
  ASSERT_TRUE(h.client().failure().has_value());
}

}  // namespace
}  // namespace blizzard::sim
