// Rough numbers for the TCP transport on loopback, one thread driving both
// ends (so they include both sides' CPU): one-way throughput per message
// size, and ping-pong round-trip latency. Not a test; run with
//   bazel run -c opt //transport:tcp_bench
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/base/internal/raw_logging.h"
#include "transport/tcp/tcp_transport.h"

namespace blizzard::transport {
namespace {

using Clock = std::chrono::steady_clock;

struct Pair {
  std::unique_ptr<TcpTransport> a, b;
};

Pair Connect() {
  auto make = [](NodeId self, NodeId peer) {
    TransportOptions options;
    options.self = self;
    options.listen_host = "127.0.0.1";
    options.peers = {{peer, "127.0.0.1", 0}};
    auto t = TcpTransport::Create(options);
    ABSL_RAW_CHECK(t.ok(), "create");
    return std::move(*t);
  };
  Pair pair{make(1, 2), make(2, 1)};
  ABSL_RAW_CHECK(
      pair.a->SetPeerAddress(2, "127.0.0.1", pair.b->ListenPort()).ok(), "");
  ABSL_RAW_CHECK(
      pair.b->SetPeerAddress(1, "127.0.0.1", pair.a->ListenPort()).ok(), "");
  auto noop = [](NodeId, absl::Span<const uint8_t>) {};
  while (!pair.a->OutboundConnected(2) || !pair.b->OutboundConnected(1)) {
    (void)pair.a->Poll(noop);
    (void)pair.b->Poll(noop);
  }
  return pair;
}

void Throughput(size_t size, uint64_t count) {
  Pair pair = Connect();
  std::vector<uint8_t> payload(size, 0x42);
  uint64_t sent = 0, received = 0;
  auto on_b = [&](NodeId, absl::Span<const uint8_t> p) {
    ABSL_RAW_CHECK(p.size() == size, "size");
    ++received;
  };
  auto noop = [](NodeId, absl::Span<const uint8_t>) {};
  const auto start = Clock::now();
  // Keep about a megabyte queued, as a paced sender would: flooding the
  // 64 MiB queue would measure cache misses on the queue, not the transport.
  while (received < count) {
    while (sent < count && pair.a->QueuedBytes(2) < (1u << 20) &&
           pair.a->Send(2, payload).ok()) {
      ++sent;
    }
    (void)pair.a->Poll(noop);
    (void)pair.b->Poll(on_b);
  }
  const double s =
      std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("one-way %8zu B: %10.0f msg/s %9.1f MB/s (payload)\n", size,
              count / s, count * size / s / 1e6);
}

void PingPong(size_t size, int rounds) {
  Pair pair = Connect();
  std::vector<uint8_t> payload(size, 1);
  std::vector<double> rtt_us;
  rtt_us.reserve(rounds);
  bool pong = false;
  auto on_a = [&](NodeId, absl::Span<const uint8_t>) { pong = true; };
  auto on_b = [&](NodeId from, absl::Span<const uint8_t> p) {
    ABSL_RAW_CHECK(pair.b->Send(from, p).ok(), "echo");
  };
  for (int i = 0; i < rounds; ++i) {
    const auto start = Clock::now();
    pong = false;
    ABSL_RAW_CHECK(pair.a->Send(2, payload).ok(), "ping");
    while (!pong) {
      (void)pair.a->Poll(on_a);
      (void)pair.b->Poll(on_b);
    }
    rtt_us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - start)
            .count());
  }
  std::sort(rtt_us.begin(), rtt_us.end());
  std::printf("ping-pong %6zu B: rtt p50 %.1f us, p99 %.1f us\n", size,
              rtt_us[rtt_us.size() / 2], rtt_us[rtt_us.size() * 99 / 100]);
}

}  // namespace
}  // namespace blizzard::transport

int main() {
  using namespace blizzard::transport;
  Throughput(64, 2000000);
  Throughput(1024, 1000000);
  Throughput(64 << 10, 20000);
  Throughput(1 << 20, 1000);
  PingPong(64, 20000);
  PingPong(4096, 20000);
  return 0;
}
