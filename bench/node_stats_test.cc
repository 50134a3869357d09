#include "bench/node_stats.h"

#include <unistd.h>

#include "gtest/gtest.h"

namespace blizzard::bench {
namespace {

TEST(ParseInfo, SectionsAndFields) {
  InfoFields f = ParseInfo(
      "# Server\r\nprocess_id:123\r\nleader_addr:127.0.0.1:7101\r\n\r\n# Stats\r\n"
      "peer_bytes_sent:4096\r\nnot a field\r\nempty:\r\n");
  EXPECT_EQ(f["process_id"], "123");
  EXPECT_EQ(f["leader_addr"], "127.0.0.1:7101");  // Split at the first colon.
  EXPECT_EQ(f["peer_bytes_sent"], "4096");
  EXPECT_EQ(f["empty"], "");
  EXPECT_FALSE(f.contains("# Server"));
  EXPECT_EQ(f.size(), 4u);
}

TEST(ProcStat, CountsFieldsAfterTheLastParenthesis) {
  // utime is field 14 and stime field 15; the command name may hold
  // spaces and ')'.
  const std::string stat =
      "4242 (a) b (c) S 1 2 3 4 5 6 7 8 9 10 150 25 11 12 20 0 1 0 100 0 0";
  absl::StatusOr<uint64_t> ticks = ParseProcStatCpuTicks(stat);
  ASSERT_TRUE(ticks.ok()) << ticks.status();
  EXPECT_EQ(*ticks, 175u);
  EXPECT_FALSE(ParseProcStatCpuTicks("no parenthesis").ok());
  EXPECT_FALSE(ParseProcStatCpuTicks("1 (x) S 1 2").ok());
  EXPECT_FALSE(ParseProcStatCpuTicks("1 (x) S 1 2 3 4 5 6 7 8 9 10 abc 25").ok());
}

TEST(ProcStat, OwnProcess) {
  volatile uint64_t spin = 0;
  for (int i = 0; i < 50'000'000; ++i) spin = spin + static_cast<uint64_t>(i);
  absl::StatusOr<uint64_t> ns = ProcessCpuNs(getpid());
  ASSERT_TRUE(ns.ok()) << ns.status();
  EXPECT_GT(*ns, 0u);
  EXPECT_FALSE(ProcessCpuNs(0).ok());
  EXPECT_FALSE(ProcessCpuNs(-1).ok());
}

NodeSample Sample(uint16_t port, std::optional<InfoFields> info, std::optional<uint64_t> cpu) {
  return NodeSample{Endpoint{"127.0.0.1", port}, std::move(info), cpu};
}

TEST(Deltas, SumOverNodesOrNotAvailable) {
  std::vector<NodeSample> before = {Sample(1, InfoFields{{"x", "10"}, {"y", "5"}}, 100),
                                    Sample(2, InfoFields{{"x", "20"}}, 200)};
  std::vector<NodeSample> after = {Sample(1, InfoFields{{"x", "15"}, {"y", "9"}}, 150),
                                   Sample(2, InfoFields{{"x", "40"}}, 260)};
  EXPECT_EQ(CounterDelta(before, after, "x"), 25u);
  EXPECT_EQ(CounterDelta(before, after, "y"), std::nullopt);  // Node 2 lacks it.
  EXPECT_EQ(CounterDelta(before, after, "missing"), std::nullopt);
  EXPECT_EQ(CpuDelta(before, after), 110u);

  after[1].cpu_ns.reset();  // Not a local process.
  EXPECT_EQ(CpuDelta(before, after), std::nullopt);
  after[1].info.reset();  // Did not answer.
  EXPECT_EQ(CounterDelta(before, after, "x"), std::nullopt);
  // A counter that went backwards (the node restarted) is not a delta.
  std::vector<NodeSample> restarted = {Sample(1, InfoFields{{"x", "3"}}, 1)};
  std::vector<NodeSample> one = {before[0]};
  EXPECT_EQ(CounterDelta(one, restarted, "x"), std::nullopt);
  EXPECT_EQ(CounterDelta({}, {}, "x"), std::nullopt);
}

TEST(Endpoints, Parse) {
  absl::StatusOr<Endpoint> e = ParseHostPort("127.0.0.1:7101");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 7101);
  EXPECT_EQ(e->ToString(), "127.0.0.1:7101");
  EXPECT_FALSE(ParseHostPort("127.0.0.1").ok());
  EXPECT_FALSE(ParseHostPort(":7101").ok());
  EXPECT_FALSE(ParseHostPort("h:").ok());
  EXPECT_FALSE(ParseHostPort("h:0").ok());
  EXPECT_FALSE(ParseHostPort("h:65536").ok());
  EXPECT_FALSE(ParseHostPort("h:12x").ok());
  EXPECT_TRUE(IsLoopback("127.0.0.1"));
  EXPECT_TRUE(IsLoopback("localhost"));
  EXPECT_FALSE(IsLoopback("10.0.0.1"));
}

TEST(Endpoints, RoundTripToNobodyFailsCleanly) {
  // Port 1 on loopback: nothing listens there in a test sandbox.
  absl::StatusOr<Reply> r = RoundTrip(Endpoint{"127.0.0.1", 1}, {"PING"}, 500);
  EXPECT_FALSE(r.ok());
  absl::StatusOr<InfoFields> info = FetchInfo(Endpoint{"127.0.0.1", 1}, 500);
  EXPECT_FALSE(info.ok());
  absl::StatusOr<Endpoint> leader = FindLeader({Endpoint{"127.0.0.1", 1}}, 100);
  ASSERT_FALSE(leader.ok());
  EXPECT_NE(leader.status().message().find("no leader"), std::string::npos);
}

}  // namespace
}  // namespace blizzard::bench
