// Processes, each with its own DpdkTransport (EAL is once per process), in
// network namespaces this test creates: two on the ends of a veth pair, or
// three on a Linux bridge (the README's three-node set-up). The pair
// exchanges --messages messages in total (half each way) of mixed sizes from
// 1 B to 64 KiB; every payload is checked byte for byte and in order. The
// same binary is both the test and the peers: the test re-executes itself
// with --peer inside each namespace.
//
// Skipped (SKIPPED printed with the reason, never silently passed) only if
// the machine cannot create network namespaces.
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "transport/dpdk/dpdk_transport.h"
#include "transport/dpdk/veth_lab.h"
#include "transport/sim/splitmix64.h"
#include "transport/test_util.h"

namespace blizzard::transport::dpdk {
namespace {

namespace lab = ::blizzard::transport::dpdk::testing;
namespace tt = ::blizzard::transport::testing;

uint64_t g_messages = 100000;  // Total, both directions; --messages=N.
constexpr uint64_t kSeed = 0xd9d4c0de;
constexpr uint64_t kCluster = 7;

// 1 B .. 64 KiB, mostly small like Raft traffic: 60% up to 256 B, 30% up to
// 4 KiB, 10% up to 64 KiB. Seq 0 and 1 are the extremes.
size_t SizeOf(NodeId from, NodeId to, uint64_t seq) {
  if (seq == 0) return 1;
  if (seq == 1) return 64u << 10;
  SplitMix64 random(kSeed ^ (from << 56) ^ (to << 48) ^ (seq * 0x9e3779b97f4a7c15ull));
  const uint64_t roll = random.Uniform(0, 99);
  if (roll < 60) return random.Uniform(1, 256);
  if (roll < 90) return random.Uniform(257, 4096);
  return random.Uniform(4097, 64u << 10);
}

std::string Flag(const std::map<std::string, std::string>& flags,
                 const std::string& name) {
  auto it = flags.find(name);
  return it == flags.end() ? "" : it->second;
}

uint64_t FlagU64(const std::map<std::string, std::string>& flags,
                 const std::string& name) {
  uint64_t value = 0;
  (void)absl::SimpleAtoi(Flag(flags, name), &value);
  return value;
}

std::string Mac(NodeId id) { return absl::StrFormat("02:00:00:00:99:%02x", id); }

// One peer process: sends `count` messages to every other node, receives
// and checks every other node's `count`, and stays until its own were all
// acknowledged, then lingers to acknowledge the others' last frames.
int RunPeer(const std::map<std::string, std::string>& flags) {
  const NodeId self = FlagU64(flags, "self");
  const NodeId nodes = FlagU64(flags, "nodes");
  const uint64_t count = FlagU64(flags, "count");
  const int timeout_s = static_cast<int>(FlagU64(flags, "timeout_s"));
  TransportOptions options;
  options.cluster_id = kCluster;
  options.self = self;
  options.listen_host = absl::StrCat("10.99.0.", self);
  options.listen_port = 7400;
  std::vector<NodeId> peers;
  for (NodeId id = 1; id <= nodes; ++id) {
    if (id == self) continue;
    peers.push_back(id);
    options.peers.push_back({id, absl::StrCat("10.99.0.", id), 7400, Mac(id)});
  }
  options.mac = Mac(self);
  options.eal_args =
      absl::StrCat("--vdev=net_af_packet0,iface=", Flag(flags, "iface"));
  options.busy_poll = Flag(flags, "busy") == "1";
  // Jumbo frames through af_packet: the cluster file's mtu_bytes and a ring
  // whose frames hold them (as the launcher writes them).
  options.mtu_bytes = FlagU64(flags, "mtu");
  if (const uint64_t ring = FlagU64(flags, "framesz"); ring > 0) {
    absl::StrAppend(&options.eal_args, ",framesz=", ring, ",blocksz=", ring);
  }
  DpdkOptions dpdk;
  dpdk.file_prefix = Flag(flags, "prefix");
  absl::StatusOr<std::unique_ptr<DpdkTransport>> created =
      DpdkTransport::Create(options, dpdk);
  if (!created.ok()) {
    std::printf("PEER %lu: create failed: %s\n", self,
                created.status().ToString().c_str());
    return 2;
  }
  DpdkTransport& t = **created;
  std::printf("PEER %lu: %s\n", self, t.Describe().c_str());
  std::fflush(stdout);

  tt::StreamChecker checker(SizeOf, /*gaps_allowed=*/false);
  // The others' streams are generated there; the checker regenerates each
  // message from (from, to, seq) and only needs to know how many come.
  for (NodeId peer : peers) {
    for (uint64_t i = 0; i < count; ++i) checker.Commit(peer, self);
  }
  auto handler = [&](NodeId from, absl::Span<const uint8_t> payload) {
    checker.OnReceive(self, from, payload);
  };
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + absl::Seconds(timeout_s);
  auto done = [&] {
    for (NodeId peer : peers) {
      if (checker.sent(self, peer) != count || !t.Idle(peer) ||
          checker.received(peer, self) != count) {
        return false;
      }
    }
    return true;
  };
  auto total = [&](bool sent) {
    uint64_t n = 0;
    for (NodeId peer : peers) {
      n += sent ? checker.sent(self, peer) : checker.received(peer, self);
    }
    return n;
  };
  bool timed_out = false;
  while (!done()) {
    if (absl::Now() > deadline) {
      timed_out = true;
      break;
    }
    // Keep the queues fed, as a pipelined Raft leader would.
    for (NodeId peer : peers) {
      while (checker.sent(self, peer) < count) {
        absl::Status s = t.Send(peer, checker.Next(self, peer));
        if (absl::IsResourceExhausted(s)) break;
        if (!s.ok()) {
          std::printf("PEER %lu: send failed: %s\n", self, s.ToString().c_str());
          return 2;
        }
        checker.Commit(self, peer);
      }
    }
    if (!t.Poll(handler).ok()) return 2;
    if (!options.busy_poll) {
      pollfd pfd{t.ReadinessFd(), POLLIN, 0};
      poll(&pfd, 1, 10);
    }
    if (!checker.errors().empty()) break;
  }
  const double elapsed_s = absl::ToDoubleSeconds(absl::Now() - start);
  // The peer may still wait for acks of its last frames.
  const absl::Time linger_end = absl::Now() + absl::Milliseconds(500);
  while (absl::Now() < linger_end) {
    (void)t.Poll(handler);
    if (!options.busy_poll) {
      pollfd pfd{t.ReadinessFd(), POLLIN, 0};
      poll(&pfd, 1, 10);
    }
  }
  const TransportStats s = t.Stats();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("CPU self=%lu user_s=%.2f sys_s=%.2f\n", self,
              usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6,
              usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6);
  std::printf(
      "RESULT self=%lu sent=%lu received=%lu errors=%zu timed_out=%d "
      "elapsed_s=%.2f frames_sent=%lu frames_received=%lu bytes_sent=%lu "
      "retransmissions=%lu timeouts=%lu out_of_order=%lu duplicate=%lu "
      "rejected=%lu ignored=%lu reassembly_failures=%lu tx_deferred=%lu "
      "send_queue_full=%lu srtt_us=%ld\n",
      self, total(true), total(false),
      checker.errors().size(), timed_out ? 1 : 0, elapsed_s, s.frames_sent,
      s.frames_received, s.bytes_sent, s.retransmissions,
      s.retransmit_timeouts, s.frames_out_of_order, s.frames_duplicate,
      s.frames_rejected, s.frames_ignored, s.reassembly_failures,
      s.tx_deferred, s.messages_dropped,
      t.engine().sender(peers[0])->srtt_us());
  for (size_t i = 0; i < checker.errors().size() && i < 5; ++i) {
    std::printf("ERROR %s\n", checker.errors()[i].c_str());
  }
  std::fflush(stdout);
  return timed_out || !checker.errors().empty() ? 1 : 0;
}

std::map<std::string, std::string> ParseResult(const std::string& log) {
  std::map<std::string, std::string> fields;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (!absl::StartsWith(line, "RESULT ")) continue;
    for (absl::string_view field : absl::StrSplit(line.substr(7), ' ')) {
      std::pair<std::string, std::string> kv = absl::StrSplit(field, '=');
      fields[kv.first] = kv.second;
    }
  }
  return fields;
}

// `nodes` processes; 2 on a veth pair, more on a bridge. Each sends
// `per_link` messages to every other. `mtu` > 0: veths and transports at
// that MTU (jumbo frames), af_packet ring frames of `framesz`.
void Exchange(int nodes, uint64_t per_link, bool busy_poll, int mtu = 0,
              int framesz = 0) {
  const std::string tag = absl::StrFormat("bz%d%s%d", getpid() % 10000,
                                          busy_poll ? "b" : (mtu > 0 ? "j" : "i"),
                                          nodes);
  absl::StatusOr<std::unique_ptr<lab::VethLab>> veth =
      nodes == 2 ? lab::VethLab::Create(tag, mtu)
                 : lab::VethLab::CreateSwitched(tag, nodes, mtu);
  if (absl::IsFailedPrecondition(veth.status())) {
    std::printf("SKIPPED: this machine cannot create network namespaces "
                "(needs root): %s\n",
                veth.status().ToString().c_str());
    GTEST_SKIP() << "cannot create network namespaces: " << veth.status();
  }
  ASSERT_TRUE(veth.ok()) << veth.status();
  const uint64_t per_side = per_link * (nodes - 1);
  // Generous: ~120 us per message on a loaded 2-core machine, + start-up.
  const int timeout_s =
      static_cast<int>(60 + per_side * nodes * 120 / 1000000);
  const std::string self_path = lab::SelfPath();
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::vector<pid_t> pids;
  std::vector<std::string> logs;
  for (int end = 0; end < nodes; ++end) {
    const std::string prefix = absl::StrCat(tag, "_", end);
    (*veth)->OwnEalPrefix(prefix);
    logs.push_back(absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", prefix, ".log"));
    unlink(logs.back().c_str());
    absl::StatusOr<pid_t> pid = (*veth)->Spawn(
        end,
        {self_path, "--peer", absl::StrCat("--self=", end + 1),
         absl::StrCat("--nodes=", nodes), absl::StrCat("--count=", per_link),
         absl::StrCat("--iface=", (*veth)->iface(end)),
         absl::StrCat("--prefix=", prefix),
         absl::StrCat("--busy=", busy_poll ? 1 : 0),
         absl::StrCat("--mtu=", mtu), absl::StrCat("--framesz=", framesz),
         absl::StrCat("--timeout_s=", timeout_s)},
        logs.back());
    ASSERT_TRUE(pid.ok()) << pid.status();
    pids.push_back(*pid);
  }
  const std::vector<int> codes =
      lab::WaitAll(pids, absl::Seconds(timeout_s + 30));
  for (int end = 0; end < nodes; ++end) {
    const std::string log = lab::ReadFile(logs[end]);
    std::printf("--- peer %d (exit %d) ---\n%s", end + 1, codes[end],
                log.c_str());
    EXPECT_EQ(codes[end], 0) << "peer " << end + 1 << " failed: " << log;
    std::map<std::string, std::string> r = ParseResult(log);
    EXPECT_EQ(r["sent"], absl::StrCat(per_side));
    EXPECT_EQ(r["received"], absl::StrCat(per_side));
    EXPECT_EQ(r["errors"], "0");
    EXPECT_EQ(r["rejected"], "0");
    EXPECT_EQ(r["reassembly_failures"], "0");
    // The MTU the transport settled on (Describe's line).
    EXPECT_TRUE(absl::StrContains(log, absl::StrCat(" mtu ", mtu > 0 ? mtu : 1500, ",")))
        << log;
    if (mtu > 0) {
      // Messages above 1368 B would need ceil(n / 1368) frames at MTU 1500;
      // at a jumbo MTU the frames carry more: fewer frames than the bytes
      // at 1500 would need.
      uint64_t frames = 0, bytes = 0;
      ASSERT_TRUE(absl::SimpleAtoi(r["frames_sent"], &frames));
      ASSERT_TRUE(absl::SimpleAtoi(r["bytes_sent"], &bytes));
      EXPECT_GT(bytes / frames, 1500u) << "frames of " << bytes / frames << " B on average";
    }
  }
}

TEST(DpdkVethTest, IdleBackoffExchangeMixedSizesVerified) {
  Exchange(2, g_messages / 2, /*busy_poll=*/false);
}

// A fifth of the messages: two spinning processes on a loaded 2-core
// machine mostly wait for the scheduler (transport/README.md).
TEST(DpdkVethTest, BusyPollExchangeMixedSizesVerified) {
  Exchange(2, g_messages / 10, /*busy_poll=*/true);
}

// Jumbo frames over af_packet (transport/dpdk/port_mtu.h): veths at MTU
// 9000, ring frames of 12 KiB, the transport told mtu_bytes = 9000 (above
// the 1518 bytes the PMD reports); fragmentation and reassembly at the new
// frame size, every payload verified. Also through the bridge.
TEST(DpdkVethTest, JumboFramesExchangeMixedSizesVerified) {
  Exchange(2, g_messages / 4, /*busy_poll=*/false, /*mtu=*/9000, /*framesz=*/12288);
}

// The largest page-sized af_packet ring frames: 60 KiB (one
// mbuf each must stay within DPDK's 65,535-byte buffers: port_mtu.h), veths
// at MTU 61000, a 64 KiB message in two frames. The mbuf pool is sized
// without the PMD's nominal descriptors (it holds no mbufs), so 61 KiB
// mbufs fit EAL's default 128 MB.
TEST(DpdkVethTest, LargestPageSizedAfPacketFramesExchangeMixedSizesVerified) {
  Exchange(2, g_messages / 20, /*busy_poll=*/false, /*mtu=*/61000, /*framesz=*/61440);
}

TEST(DpdkVethTest, JumboFramesThreeNodesThroughABridge) {
  Exchange(3, g_messages / 40, /*busy_poll=*/false, /*mtu=*/9000, /*framesz=*/12288);
}

// The README's three-node set-up: every node talks to both others through
// a Linux bridge (MAC learning, flooding of unknown destinations: frames
// for other nodes must be ignored, not rejected).
TEST(DpdkVethTest, ThreeNodesThroughABridge) {
  Exchange(3, g_messages / 20, /*busy_poll=*/false);
}

}  // namespace
}  // namespace blizzard::transport::dpdk

int main(int argc, char** argv) {
  using namespace blizzard::transport::dpdk;
  if (argc > 1 && std::strcmp(argv[1], "--peer") == 0) {
    std::map<std::string, std::string> flags;
    for (int i = 2; i < argc; ++i) {
      std::pair<std::string, std::string> kv =
          absl::StrSplit(absl::string_view(argv[i]).substr(2), '=');
      flags[kv.first] = kv.second;
    }
    return RunPeer(flags);
  }
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (absl::StartsWith(argv[i], "--messages=")) {
      (void)absl::SimpleAtoi(absl::string_view(argv[i]).substr(11), &g_messages);
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  ::testing::InitGoogleTest(&rest_argc, rest.data());
  return RUN_ALL_TESTS();
}
