// Throughput and round-trip latency of the DPDK transport over a veth pair
// (net_af_packet), next to the TCP transport on loopback measured the same
// way: two processes (EAL is once per process), a client and an echo
// server, each driving its transport from its own loop as a node would.
// Not a test. Run as root (it creates two network namespaces):
//   bazel run -c opt //transport:dpdk_bench -- [--quick]
// Output: one line per measurement; transport/README.md has the numbers.
//
// Method (as tcp_bench): one-way throughput = the client sends N messages
// of one size, keeping about 1 MiB queued, until the server has counted
// them all and said so; round trip = the client sends one message, the
// server echoes it from its handler, repeated, p50/p99 over the rounds.
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "transport/dpdk/dpdk_transport.h"
#include "transport/dpdk/veth_lab.h"
#include "transport/tcp/tcp_transport.h"

namespace blizzard::transport::dpdk {
namespace {

namespace lab = ::blizzard::transport::dpdk::testing;

// First payload byte: what the message is for.
enum : uint8_t {
  kData = 'D',      // Counted by the server.
  kExpect = 'N',    // + u64: how many kData the next run sends.
  kCounted = 'K',   // Server -> client: all of them arrived.
  kPing = 'P',      // Echoed.
  kExit = 'X',
};

using Flags = std::map<std::string, std::string>;

std::string Flag(const Flags& flags, const std::string& name,
                 const std::string& fallback = "") {
  auto it = flags.find(name);
  return it == flags.end() ? fallback : it->second;
}

// One endpoint: a transport plus the loop that drives it.
class Endpoint {
 public:
  explicit Endpoint(const Flags& flags) : busy_(Flag(flags, "busy") == "1") {
    const NodeId self = Flag(flags, "role") == "client" ? 1 : 2;
    peer_ = 3 - self;
    TransportOptions o;
    o.cluster_id = 7;
    o.self = self;
    o.busy_poll = busy_;
    if (Flag(flags, "transport") == "tcp") {
      uint32_t base = 0;
      (void)absl::SimpleAtoi(Flag(flags, "port"), &base);
      o.listen_host = "127.0.0.1";
      o.listen_port = static_cast<uint16_t>(base + self);
      o.peers = {{peer_, "127.0.0.1", static_cast<uint16_t>(base + peer_)}};
      auto t = TcpTransport::Create(o);
      if (!t.ok()) Die(t.status());
      tcp_ = t->get();
      transport_ = std::move(*t);
    } else {
      o.listen_host = absl::StrCat("10.88.0.", self);
      o.listen_port = 7400;
      o.mac = Flag(flags, "mac");
      o.peers = {{peer_, absl::StrCat("10.88.0.", peer_), 7400,
                  Flag(flags, "peer_mac")}};
      o.eal_args = absl::StrCat("--vdev=net_af_packet0,iface=", Flag(flags, "iface"));
      DpdkOptions d;
      d.file_prefix = Flag(flags, "prefix");
      uint32_t window = 0;
      if (absl::SimpleAtoi(Flag(flags, "window"), &window)) {
        d.protocol.window_frames = window;
      }
      int64_t backoff_us_min = 0;
      if (absl::SimpleAtoi(Flag(flags, "backoff_us_min"), &backoff_us_min)) {
        d.doorbell_backoff_us_min = backoff_us_min;
      }
      auto t = DpdkTransport::Create(o, d);
      if (!t.ok()) Die(t.status());
      dpdk_ = t->get();
      transport_ = std::move(*t);
    }
  }

  [[noreturn]] static void Die(const absl::Status& s) {
    std::printf("create failed: %s\n", s.ToString().c_str());
    std::fflush(stdout);
    std::_Exit(2);
  }

  // One turn of the loop: wait as the node would (not when busy), poll.
  void Turn(const MessageHandler& handler) {
    if (!busy_) {
      pollfd pfd{transport_->ReadinessFd(), POLLIN, 0};
      poll(&pfd, 1, 1);
    }
    if (!transport_->Poll(handler).ok()) Die(absl::InternalError("poll"));
  }

  size_t Queued() const {
    return dpdk_ != nullptr ? dpdk_->QueuedBytes(peer_) : tcp_->QueuedBytes(peer_);
  }
  Transport& t() { return *transport_; }
  DpdkTransport* dpdk() { return dpdk_; }
  NodeId peer() const { return peer_; }

 private:
  bool busy_;
  NodeId peer_;
  std::unique_ptr<Transport> transport_;
  DpdkTransport* dpdk_ = nullptr;
  TcpTransport* tcp_ = nullptr;
};

std::vector<uint8_t> Message(uint8_t kind, size_t size, uint64_t value = 0) {
  std::vector<uint8_t> m(std::max<size_t>(size, 9), 0x5a);
  m[0] = kind;
  std::memcpy(&m[1], &value, sizeof(value));
  return m;
}

int RunServer(const Flags& flags) {
  Endpoint e(flags);
  uint64_t expected = 0, counted = 0;
  bool exit = false;
  auto handler = [&](NodeId from, absl::Span<const uint8_t> p) {
    switch (p[0]) {
      case kData:
        if (++counted == expected) {
          while (!e.t().Send(from, Message(kCounted, 9, counted)).ok()) {
          }
        }
        break;
      case kExpect:
        std::memcpy(&expected, &p[1], sizeof(expected));
        counted = 0;
        break;
      case kPing:
        (void)e.t().Send(from, p);
        break;
      case kExit:
        exit = true;
        break;
    }
  };
  const absl::Time deadline = absl::Now() + absl::Minutes(20);
  while (!exit && absl::Now() < deadline) e.Turn(handler);
  // Let the client's last frames be acknowledged.
  const absl::Time linger = absl::Now() + absl::Milliseconds(300);
  while (absl::Now() < linger) e.Turn(handler);
  if (e.dpdk() != nullptr) {
    // Frames lost on the way in show up here: every frame after a loss is
    // out of order until the sender goes back.
    const TransportStats s = e.t().Stats();
    std::printf("BENCH server    frames received %lu, out-of-order %lu, "
                "duplicates %lu\n",
                s.frames_received, s.frames_out_of_order, s.frames_duplicate);
  }
  return 0;
}

int RunClient(const Flags& flags) {
  Endpoint e(flags);
  const std::string name = absl::StrCat(
      Flag(flags, "transport"), Flag(flags, "busy") == "1" ? " busy" : " idle");
  const bool quick = Flag(flags, "quick") == "1";
  bool pong = false, counted = false;
  auto handler = [&](NodeId, absl::Span<const uint8_t> p) {
    if (p[0] == kPing) pong = true;
    if (p[0] == kCounted) counted = true;
  };
  // The server may still be starting (EAL takes a second): ping until it
  // answers.
  for (absl::Time next = absl::Now(); !pong;) {
    if (absl::Now() >= next && e.Queued() == 0) {
      (void)e.t().Send(e.peer(), Message(kPing, 9));
      next = absl::Now() + absl::Milliseconds(20);
    }
    e.Turn(handler);
  }
  for (size_t size : {64, 1024}) {
    const uint64_t count = (size == 64 ? 400000 : 200000) / (quick ? 10 : 1);
    while (!e.t().Send(e.peer(), Message(kExpect, 9, count)).ok()) e.Turn(handler);
    const std::vector<uint8_t> data = Message(kData, size);
    counted = false;
    uint64_t sent = 0;
    rusage before{}, after{};
    getrusage(RUSAGE_SELF, &before);
    const absl::Time start = absl::Now();
    absl::Time report = start + absl::Seconds(1);
    while (!counted) {
      while (sent < count && e.Queued() < (1u << 20) &&
             e.t().Send(e.peer(), data).ok()) {
        ++sent;
      }
      e.Turn(handler);
      if (Flag(flags, "progress") == "1" && absl::Now() > report &&
          e.dpdk() != nullptr) {
        report += absl::Seconds(1);
        const SendStream* s = e.dpdk()->engine().sender(e.peer());
        std::printf("BENCH progress sent %lu acked_seq %lu next_seq %lu "
                    "srtt %ld rto %ld timeouts %lu recovering %d\n",
                    sent, s->acked_seq(), s->next_seq(), s->srtt_us(),
                    s->rto_us(), s->stats().timeouts, s->recovering());
        std::fflush(stdout);
      }
    }
    const double s = absl::ToDoubleSeconds(absl::Now() - start);
    getrusage(RUSAGE_SELF, &after);
    const double cpu_s =
        (after.ru_utime.tv_sec - before.ru_utime.tv_sec) +
        (after.ru_utime.tv_usec - before.ru_utime.tv_usec) / 1e6 +
        (after.ru_stime.tv_sec - before.ru_stime.tv_sec) +
        (after.ru_stime.tv_usec - before.ru_stime.tv_usec) / 1e6;
    std::printf("BENCH %-9s one-way %5zu B: %9.0f msg/s %7.1f MB/s  (client "
                "cpu %.0f%%)\n",
                name.c_str(), size, count / s, count * size / s / 1e6,
                100 * cpu_s / s);
    std::fflush(stdout);
  }
  for (size_t size : {64, 1024}) {
    const int rounds = quick ? 2000 : 20000;
    const std::vector<uint8_t> ping = Message(kPing, size);
    std::vector<double> rtt_us;
    rtt_us.reserve(rounds);
    for (int i = 0; i < rounds; ++i) {
      pong = false;
      const absl::Time start = absl::Now();
      while (!e.t().Send(e.peer(), ping).ok()) e.Turn(handler);
      while (!pong) e.Turn(handler);
      rtt_us.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
    }
    std::sort(rtt_us.begin(), rtt_us.end());
    std::printf("BENCH %-9s rtt %5zu B: p50 %7.1f us  p99 %7.1f us\n",
                name.c_str(), size, rtt_us[rtt_us.size() / 2],
                rtt_us[rtt_us.size() * 99 / 100]);
    std::fflush(stdout);
  }
  if (Flag(flags, "transport") == "dpdk") {
    const PollStats& p = e.dpdk()->poll_stats();
    std::printf("BENCH %-9s polls %lu, idle %lu, doorbell rings %lu\n",
                name.c_str(), p.polls, p.idle_polls, p.doorbell_rings);
    const TransportStats s = e.t().Stats();
    std::printf("BENCH %-9s frames sent %lu received %lu, retransmissions %lu "
                "(timeouts %lu), out-of-order %lu\n",
                name.c_str(), s.frames_sent, s.frames_received,
                s.retransmissions, s.retransmit_timeouts, s.frames_out_of_order);
  }
  (void)e.t().Send(e.peer(), Message(kExit, 9));
  const absl::Time linger = absl::Now() + absl::Milliseconds(300);
  while (absl::Now() < linger) e.Turn(handler);
  return 0;
}

// Runs one client/server pair and prints the client's lines.
void RunPair(lab::VethLab* veth, const std::string& transport, bool busy,
             bool quick, int run, const std::string& backoff_us_min,
             const std::string& window, const std::string& progress) {
  const std::string self = lab::SelfPath();
  const std::string tag = absl::StrFormat("bzb%d_%d", getpid() % 10000, run);
  std::vector<pid_t> pids;
  std::vector<std::string> logs;
  const std::string macs[2] = {"02:00:00:00:88:01", "02:00:00:00:88:02"};
  for (int end = 0; end < 2; ++end) {
    const std::string prefix = absl::StrCat(tag, "_", end);
    std::vector<std::string> argv = {
        self,
        absl::StrCat("--role=", end == 0 ? "client" : "server"),
        absl::StrCat("--transport=", transport),
        absl::StrCat("--busy=", busy ? 1 : 0),
        absl::StrCat("--quick=", quick ? 1 : 0),
        absl::StrCat("--iface=", veth->iface(end)),
        absl::StrCat("--mac=", macs[end]),
        absl::StrCat("--peer_mac=", macs[1 - end]),
        absl::StrCat("--prefix=", prefix),
        absl::StrCat("--port=", 20000 + (getpid() % 1000) * 10 + run * 2)};
    // Optional knobs only when given ("--x" alone would mean x=1).
    for (const auto& [name, value] : {std::pair{"backoff_us_min", backoff_us_min},
                                      std::pair{"window", window},
                                      std::pair{"progress", progress}}) {
      if (!value.empty()) argv.push_back(absl::StrCat("--", name, "=", value));
    }
    logs.push_back(absl::StrCat("/tmp/", prefix, ".log"));
    unlink(logs.back().c_str());
    absl::StatusOr<pid_t> pid;
    if (transport == "dpdk") {
      veth->OwnEalPrefix(prefix);
      pid = veth->Spawn(end, argv, logs.back());
    } else {
      pid = lab::SpawnLogged(argv, logs.back());  // Loopback, no namespace.
    }
    if (!pid.ok()) {
      std::printf("spawn failed: %s\n", pid.status().ToString().c_str());
      return;
    }
    pids.push_back(*pid);
  }
  const std::vector<int> codes = lab::WaitAll(pids, absl::Minutes(20));
  for (const std::string& log : logs) {
    for (absl::string_view line : absl::StrSplit(lab::ReadFile(log), '\n')) {
      if (absl::StartsWith(line, "BENCH") || absl::StrContains(line, "failed")) {
        std::printf("%s\n", std::string(line).c_str());
      }
    }
  }
  if (codes[0] != 0 || codes[1] != 0) {
    std::printf("(%s %s: exit codes %d %d; logs in %s %s)\n", transport.c_str(),
                busy ? "busy" : "idle", codes[0], codes[1], logs[0].c_str(),
                logs[1].c_str());
  }
  std::fflush(stdout);
}

}  // namespace
}  // namespace blizzard::transport::dpdk

int main(int argc, char** argv) {
  using namespace blizzard::transport::dpdk;
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (!absl::StartsWith(arg, "--")) continue;
    std::pair<std::string, std::string> kv = absl::StrSplit(arg.substr(2), '=');
    flags[kv.first] = kv.second.empty() ? "1" : kv.second;
  }
  if (Flag(flags, "role") == "server") return RunServer(flags);
  if (Flag(flags, "role") == "client") return RunClient(flags);
  const bool quick = Flag(flags, "quick") == "1";
  absl::StatusOr<std::unique_ptr<lab::VethLab>> veth =
      lab::VethLab::Create(absl::StrFormat("bzb%d", getpid() % 10000));
  if (!veth.ok()) {
    std::printf("cannot create the veth pair (run as root): %s\n",
                veth.status().ToString().c_str());
    return 1;
  }
  std::printf("load average before: %s", lab::ReadFile("/proc/loadavg").c_str());
  int run = 0;
  const std::string only = Flag(flags, "only");  // e.g. "dpdk idle"
  for (bool busy : {true, false}) {
    for (const char* transport : {"dpdk", "tcp"}) {
      if (!only.empty() &&
          only != absl::StrCat(transport, busy ? " busy" : " idle")) {
        continue;
      }
      RunPair(veth->get(), transport, busy, quick, run++,
              Flag(flags, "backoff_us_min"), Flag(flags, "window"),
              Flag(flags, "progress"));
    }
  }
  std::printf("load average after: %s", lab::ReadFile("/proc/loadavg").c_str());
  return 0;
}
