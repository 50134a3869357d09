// TCP-specific behaviour: readiness, restarts, broken connections, hostile
// input. The Transport contract itself is in transport_contract_test.cc.
#include "transport/tcp/tcp_transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "transport/tcp/frame_format.h"
#include "transport/tcp/tcp_test_cluster.h"
#include "transport/test_util.h"

namespace blizzard::transport {
namespace {

using testing::StepUntil;
using testing::StreamChecker;
using testing::TcpTestCluster;

constexpr uint64_t kCluster = 7;

TransportOptions Base() {
  TransportOptions options;
  options.cluster_id = kCluster;
  options.reconnect_backoff_ms_min = 1;
  options.reconnect_backoff_ms_max = 20;
  return options;
}

// Node `self` on 127.0.0.1 with the single peer `peer` at `peer_port`.
TransportOptions Solo(NodeId self, NodeId peer, uint16_t peer_port) {
  TransportOptions options = Base();
  options.self = self;
  options.listen_host = "127.0.0.1";
  options.peers = {{peer, "127.0.0.1", peer_port}};
  return options;
}

bool Readable(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  return poll(&pfd, 1, 0) == 1;
}

// A listening socket on 127.0.0.1, port chosen by the kernel.
int RawListen(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(listen(fd, 16), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

// A blocking connect, then non-blocking for reads.
int RawConnect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
      << std::strerror(errno);
  return fd;
}

void RawWrite(int fd, absl::Span<const uint8_t> bytes) {
  ASSERT_EQ(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

// True once the other side closed or reset the connection.
bool RawClosedByPeer(int fd) {
  uint8_t buffer[256];
  ssize_t got = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
  return got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

// Appends whatever `fd` has to `out`.
void RawDrain(int fd, std::vector<uint8_t>& out) {
  uint8_t buffer[64 << 10];
  ssize_t got;
  while ((got = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT)) > 0) {
    out.insert(out.end(), buffer, buffer + got);
  }
}

void PollOnce(Transport& transport) {
  ASSERT_TRUE(
      transport.Poll([](NodeId, absl::Span<const uint8_t>) {}).ok());
}

TEST(TcpTransportTest, CreateRejectsBadOptions) {
  auto bad = [](auto mutate) {
    TransportOptions options = Solo(1, 2, 1);
    mutate(options);
    return TcpTransport::Create(options).status();
  };
  EXPECT_TRUE(bad([](TransportOptions&) {}).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(
      bad([](TransportOptions& o) { o.peers.push_back({2, "x", 1}); })));
  EXPECT_TRUE(absl::IsInvalidArgument(
      bad([](TransportOptions& o) { o.peers.push_back({1, "x", 1}); })));
  EXPECT_TRUE(absl::IsInvalidArgument(
      bad([](TransportOptions& o) { o.peers[0].host = ""; })));
  EXPECT_TRUE(absl::IsInvalidArgument(bad(
      [](TransportOptions& o) { o.message_bytes_max = kMessageBytesMax + 1; })));
  EXPECT_TRUE(absl::IsInvalidArgument(
      bad([](TransportOptions& o) { o.reconnect_backoff_ms_min = 0; })));
  EXPECT_TRUE(absl::IsInvalidArgument(bad([](TransportOptions& o) {
    o.peers[0].host = "no-such-host.invalid";
  })));
  EXPECT_TRUE(absl::IsInvalidArgument(
      bad([](TransportOptions& o) { o.listen_host = "not an address"; })));
}

TEST(TcpTransportTest, PortInUseIsUnavailable) {
  TransportOptions options = Solo(1, 2, 0);
  auto first = TcpTransport::Create(options);
  ASSERT_TRUE(first.ok()) << first.status();
  options.listen_port = (*first)->ListenPort();
  EXPECT_TRUE(absl::IsUnavailable(TcpTransport::Create(options).status()));
}

TEST(TcpTransportTest, ReadinessFdIsQuietWhenIdleAndSignalsWork) {
  TcpTestCluster cluster(2, Base());
  const int fd1 = cluster.node(1).ReadinessFd();
  const int fd2 = cluster.node(2).ReadinessFd();
  std::vector<std::string> got;
  auto handler = [&](NodeId, NodeId, absl::Span<const uint8_t> p) {
    got.emplace_back(p.begin(), p.end());
  };
  // Connected and settled: nothing to do, so an outer epoll would sleep.
  ASSERT_TRUE(StepUntil([&] { cluster.Step(handler); },
                        [&] {
                          return cluster.AllConnected() && !Readable(fd1) &&
                                 !Readable(fd2);
                        }));
  const std::string text = "hello";
  ASSERT_TRUE(cluster.node(1)
                  .Send(2, {reinterpret_cast<const uint8_t*>(text.data()),
                            text.size()})
                  .ok());
  EXPECT_TRUE(Readable(fd1)) << "queued data must wake the sender's loop";
  auto handler1 = [&](NodeId from, absl::Span<const uint8_t> p) {
    handler(1, from, p);
  };
  auto handler2 = [&](NodeId from, absl::Span<const uint8_t> p) {
    handler(2, from, p);
  };
  ASSERT_TRUE(cluster.node(1).Poll(handler1).ok());
  EXPECT_FALSE(Readable(fd1)) << "flushed: nothing left to do";
  testing::WaitReadable({&fd2, 1}, 10000);
  ASSERT_TRUE(Readable(fd2)) << "arrived data must wake the receiver's loop";
  ASSERT_TRUE(cluster.node(2).Poll(handler2).ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], text);
  EXPECT_FALSE(Readable(fd2));
}

TEST(TcpTransportTest, UnreachablePeerIsRedialedOnTimer) {
  uint16_t port;
  int listener = RawListen(&port);
  close(listener);  // Nothing listens there now: dials are refused.
  TransportOptions options = Solo(1, 2, port);
  auto transport = TcpTransport::Create(options);
  ASSERT_TRUE(transport.ok());
  TcpTransport& t = **transport;
  PollOnce(t);  // First dial.
  // With no socket activity left, only the back-off timer can wake us.
  for (int i = 0; i < 5; ++i) {
    const int fd = t.ReadinessFd();
    testing::WaitReadable({&fd, 1}, 10000);
    ASSERT_TRUE(Readable(fd)) << "the redial timer never fired";
    PollOnce(t);
  }
  EXPECT_EQ(t.Stats().connects, 0u);
  EXPECT_FALSE(t.OutboundConnected(2));
}

TEST(TcpTransportTest, PeerRestartReconnectsAndKeepsTheQueue) {
  TcpTestCluster cluster(2, Base());
  StreamChecker checker([](NodeId, NodeId, uint64_t seq) { return 100 + seq; },
                        /*gaps_allowed=*/true);
  auto handler = [&](NodeId to, NodeId from, absl::Span<const uint8_t> p) {
    checker.OnReceive(to, from, p);
  };
  auto send = [&](NodeId from, NodeId to, int count) {
    for (int i = 0; i < count; ++i) {
      ASSERT_TRUE(cluster.node(from).Send(to, checker.Next(from, to)).ok());
      checker.Commit(from, to);
    }
  };
  send(1, 2, 50);
  send(2, 1, 50);
  ASSERT_TRUE(StepUntil([&] { cluster.Step(handler); },
                        [&] { return checker.AllDelivered(); }));

  cluster.Stop(2);
  ASSERT_TRUE(StepUntil([&] { cluster.Step(handler); },
                        [&] { return !cluster.node(1).OutboundConnected(2); }));
  // Node 1 knows 2 is down: these wait in its queue, none is written into
  // the dead connection.
  send(1, 2, 50);
  for (int i = 0; i < 20; ++i) cluster.Step(handler, 1);
  EXPECT_GT(cluster.node(1).QueuedBytes(2), 0u);

  ASSERT_TRUE(cluster.Start(2).ok());
  send(2, 1, 50);
  ASSERT_TRUE(StepUntil([&] { cluster.Step(handler); },
                        [&] { return checker.AllDelivered(); }));
  EXPECT_TRUE(checker.errors().empty()) << checker.errors().front();
  EXPECT_EQ(checker.received(1, 2), 100u);  // Nothing lost.
  EXPECT_EQ(checker.received(2, 1), 100u);
  EXPECT_EQ(cluster.node(1).QueuedBytes(2), 0u);
  TransportStats stats = cluster.node(1).Stats();
  EXPECT_GE(stats.disconnects, 2u);  // Its outbound and the old inbound.
  EXPECT_EQ(stats.messages_dropped, 0u);
}

TEST(TcpTransportTest, BreakMidFrameDropsOnlyThatMessage) {
  uint16_t port;
  int listener = RawListen(&port);
  TransportOptions options = Solo(1, 2, port);
  auto created = TcpTransport::Create(options);
  ASSERT_TRUE(created.ok());
  TcpTransport& t = **created;

  // Far larger than what the kernel buffers on both ends can hold, so the
  // connection is cut while this frame is half written.
  const std::vector<uint8_t> big(32u << 20, 0x5a);
  const std::vector<uint8_t> small = testing::MakePayload(1, 2, 1, 100);
  ASSERT_TRUE(t.Send(2, big).ok());
  ASSERT_TRUE(t.Send(2, small).ok());

  int conn = -1;
  ASSERT_TRUE(StepUntil([&] { PollOnce(t); },
                        [&] { return (conn = accept(listener, nullptr, nullptr)) >= 0; }));
  std::vector<uint8_t> first;
  ASSERT_TRUE(StepUntil(
      [&] {
        PollOnce(t);
        RawDrain(conn, first);
      },
      [&] { return first.size() >= (64u << 10); }));
  auto hello = tcp::DecodeHello(first);
  ASSERT_TRUE(hello.ok()) << hello.status();
  EXPECT_EQ(hello->node_id, 1u);
  EXPECT_EQ(hello->cluster_id, kCluster);
  EXPECT_EQ(tcp::DecodeFrameHeader(
                absl::MakeSpan(first).subspan(tcp::kHelloBytes))
                .payload_bytes,
            big.size());
  close(conn);  // Unread data pending: the kernel resets the connection.

  ASSERT_TRUE(StepUntil([&] { PollOnce(t); },
                        [&] { return t.Stats().messages_dropped == 1; }));
  ASSERT_TRUE(StepUntil([&] { PollOnce(t); },
                        [&] { return (conn = accept(listener, nullptr, nullptr)) >= 0; }));
  // The new connection starts with a hello and then the small message whole:
  // no tail of the big one.
  const size_t want = tcp::kHelloBytes + tcp::kFrameHeaderBytes + small.size();
  std::vector<uint8_t> second;
  ASSERT_TRUE(StepUntil(
      [&] {
        PollOnce(t);
        RawDrain(conn, second);
      },
      [&] { return second.size() >= want; }));
  EXPECT_EQ(second.size(), want);
  ASSERT_TRUE(tcp::DecodeHello(second).ok());
  auto rest = absl::MakeConstSpan(second).subspan(tcp::kHelloBytes);
  tcp::FrameHeader header = tcp::DecodeFrameHeader(rest);
  ASSERT_EQ(header.payload_bytes, small.size());
  auto payload = rest.subspan(tcp::kFrameHeaderBytes);
  EXPECT_TRUE(tcp::PayloadMatches(header, payload));
  EXPECT_EQ(payload, absl::MakeConstSpan(small));
  EXPECT_EQ(t.QueuedBytes(2), 0u);
  EXPECT_EQ(t.Stats().messages_sent, 1u);
  close(conn);
  close(listener);
}

std::vector<uint8_t> Concat(std::initializer_list<absl::Span<const uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (auto part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

struct BadInput {
  std::string name;
  std::vector<uint8_t> bytes;
  bool frame_error;  // frames_rejected (else handshakes_rejected).
};

std::vector<BadInput> BadInputs() {
  const tcp::HelloBytes hello = tcp::EncodeHello(kCluster, 1);
  std::vector<BadInput> cases;
  cases.push_back({"garbage", std::vector<uint8_t>(64, 0xab), false});
  cases.push_back(
      {"foreign cluster", Concat({tcp::EncodeHello(kCluster + 1, 1)}), false});
  cases.push_back({"unknown node", Concat({tcp::EncodeHello(kCluster, 42)}),
                   false});
  tcp::HelloBytes damaged = hello;
  damaged[9] ^= 1;  // Cluster id bit flipped: the checksum catches it.
  cases.push_back({"damaged hello", Concat({damaged}), false});
  tcp::HelloBytes future = hello;
  future[4] = 2;  // Version 2, with a valid checksum.
  uint64_t sum = XXH3_64bits(future.data(), 24);
  std::memcpy(&future[24], &sum, 8);
  cases.push_back({"future version", Concat({future}), false});

  const std::vector<uint8_t> payload = testing::MakePayload(1, 2, 0, 300);
  tcp::FrameHeaderBytes huge{};
  const uint32_t length = 0xffffffff, kind = tcp::kFrameKindMessage;
  std::memcpy(&huge[0], &length, 4);
  std::memcpy(&huge[4], &kind, 4);
  cases.push_back({"huge length", Concat({hello, huge}), true});
  std::vector<uint8_t> flipped = payload;
  flipped[150] ^= 0x10;
  cases.push_back({"bad checksum",
                   Concat({hello, tcp::EncodeFrameHeader(payload), flipped}),
                   true});
  tcp::FrameHeaderBytes wrong_kind = tcp::EncodeFrameHeader(payload);
  wrong_kind[4] = 9;
  cases.push_back(
      {"unknown kind", Concat({hello, wrong_kind, payload}), true});
  tcp::FrameHeaderBytes short_length = tcp::EncodeFrameHeader(payload);
  short_length[0] -= 1;  // Length no longer matches what was checksummed.
  cases.push_back({"corrupted length",
                   Concat({hello, short_length, payload}), true});
  return cases;
}

TEST(TcpTransportTest, HostileConnectionsAreClosedAndTheTransportLivesOn) {
  TcpTestCluster cluster(2, Base());
  std::vector<std::string> got;
  auto handler = [&](NodeId, NodeId from, absl::Span<const uint8_t> p) {
    EXPECT_EQ(from, 1u);
    got.emplace_back(p.begin(), p.end());
  };
  for (const BadInput& bad : BadInputs()) {
    SCOPED_TRACE(bad.name);
    const TransportStats before = cluster.node(2).Stats();
    int fd = RawConnect(cluster.port(2));
    RawWrite(fd, bad.bytes);
    ASSERT_TRUE(StepUntil([&] { cluster.Step(handler); },
                          [&] { return RawClosedByPeer(fd); }));
    close(fd);
    const TransportStats after = cluster.node(2).Stats();
    EXPECT_EQ(after.frames_rejected - before.frames_rejected,
              bad.frame_error ? 1u : 0u);
    EXPECT_EQ(after.handshakes_rejected - before.handshakes_rejected,
              bad.frame_error ? 0u : 1u);
    EXPECT_EQ(after.messages_received, before.messages_received);
    // Still serving the real peer (which, for the cases that forged its
    // hello, had its connection replaced and redials).
    const std::string text = "still alive after " + bad.name;
    got.clear();
    ASSERT_TRUE(cluster.node(1)
                    .Send(2, {reinterpret_cast<const uint8_t*>(text.data()),
                              text.size()})
                    .ok());
    ASSERT_TRUE(StepUntil([&] { cluster.Step(handler); },
                          [&] { return !got.empty(); }));
    EXPECT_EQ(got, std::vector<std::string>{text});
  }
}

TEST(TcpTransportTest, SilentConnectionTimesOut) {
  TcpOptions tcp_options;
  tcp_options.hello_timeout_ms = 50;
  TcpTestCluster cluster(2, Base(), tcp_options);
  int fd = RawConnect(cluster.port(2));
  auto noop = [](NodeId, NodeId, absl::Span<const uint8_t>) {};
  ASSERT_TRUE(StepUntil([&] { cluster.Step(noop); },
                        [&] { return RawClosedByPeer(fd); }));
  close(fd);
  EXPECT_EQ(cluster.node(2).Stats().handshakes_rejected, 1u);
}

TEST(TcpTransportTest, InboundConnectionsAreBounded) {
  TransportOptions options = Solo(2, 1, 0);  // Peer 1 is never dialed.
  TcpOptions tcp_options;
  tcp_options.inbound_connections_max = 2;
  auto created = TcpTransport::Create(options, tcp_options);
  ASSERT_TRUE(created.ok());
  TcpTransport& t = **created;
  int fds[3];
  for (int& fd : fds) fd = RawConnect(t.ListenPort());
  auto closed_count = [&] {
    int closed = 0;
    for (int fd : fds) closed += RawClosedByPeer(fd) ? 1 : 0;
    return closed;
  };
  ASSERT_TRUE(StepUntil([&] { PollOnce(t); },
                        [&] { return closed_count() >= 1; }));
  for (int i = 0; i < 10; ++i) PollOnce(t);
  EXPECT_EQ(closed_count(), 1);
  EXPECT_EQ(t.Stats().handshakes_rejected, 1u);
  for (int fd : fds) close(fd);
}

TEST(TcpTransportTest, LargeMessagesGrowBuffersAndSmallOnesFollow) {
  TcpTestCluster cluster(2, Base());
  StreamChecker checker(
      [](NodeId, NodeId, uint64_t seq) -> size_t {
        return seq % 2 == 0 ? (8u << 20) + seq : 100;
      },
      /*gaps_allowed=*/false);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(cluster.node(1).Send(2, checker.Next(1, 2)).ok());
    checker.Commit(1, 2);
  }
  ASSERT_TRUE(StepUntil(
      [&] {
        cluster.Step([&](NodeId to, NodeId from, absl::Span<const uint8_t> p) {
          checker.OnReceive(to, from, p);
        });
      },
      [&] { return checker.AllDelivered(); }));
  EXPECT_TRUE(checker.errors().empty()) << checker.errors().front();
}

}  // namespace
}  // namespace blizzard::transport
