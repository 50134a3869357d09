// DpdkTransport on a real port: this process moves into one namespace of a
// veth pair (net_af_packet on its end) and plays the peer itself on the
// other end with a raw AF_PACKET socket, writing and reading frames with
// the format code. So the datapath (mbufs, bursts, readiness, the port's
// MAC) is tested against frames the test controls byte for byte.
//
// One process, one EAL: the tests share it and create transports one after
// the other with the same EAL arguments. Skipped (SKIPPED printed) only if
// the machine cannot create network namespaces.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "transport/dpdk/dpdk_transport.h"
#include "transport/dpdk/frame_format.h"
#include "transport/dpdk/test_frames.h"
#include "transport/dpdk/veth_lab.h"

namespace blizzard::transport::dpdk {
namespace {

namespace lab = ::blizzard::transport::dpdk::testing;

constexpr uint64_t kCluster = 7;
constexpr NodeId kSelf = 1;
constexpr NodeId kFake = 2;
constexpr char kSelfMac[] = "02:00:00:00:77:01";
constexpr char kFakeMac[] = "02:00:00:00:77:02";

struct Lab {
  std::unique_ptr<lab::VethLab> veth;
  std::string skip_reason;
  int ns_fd[2] = {-1, -1};
  std::string prefix;
};
Lab* g_lab = nullptr;

bool Readable(int fd, int wait_ms = 0) {
  pollfd pfd{fd, POLLIN, 0};
  return poll(&pfd, 1, wait_ms) == 1;
}

TransportOptions Options(bool busy_poll = false) {
  TransportOptions o;
  o.cluster_id = kCluster;
  o.self = kSelf;
  o.listen_host = "10.77.0.1";
  o.listen_port = 7400;
  o.mac = kSelfMac;
  o.peers = {{kFake, "10.77.0.2", 7400, kFakeMac}};
  o.eal_args = absl::StrCat("--vdev=net_af_packet0,iface=", g_lab->veth->iface(0));
  o.busy_poll = busy_poll;
  return o;
}

DpdkOptions Knobs() {
  DpdkOptions d;
  d.file_prefix = g_lab->prefix;
  d.eal_memory_mb = 64;
  return d;
}

// The far end of the veth pair, driven by hand: a raw socket in the other
// namespace that sends and receives whole Ethernet frames.
class FakePeer {
 public:
  FakePeer() {
    // Enter the peer's namespace for the socket's creation only (setns
    // affects this thread; the socket stays bound to that namespace).
    EXPECT_EQ(setns(g_lab->ns_fd[1], CLONE_NEWNET), 0);
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = static_cast<int>(if_nametoindex(g_lab->veth->iface(1).c_str()));
    EXPECT_GT(addr.sll_ifindex, 0);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(setns(g_lab->ns_fd[0], CLONE_NEWNET), 0);
    epoch_ = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) | 1;
  }
  ~FakePeer() { close(fd_); }

  void SendRaw(const std::vector<uint8_t>& frame) {
    ASSERT_EQ(send(fd_, frame.data(), frame.size(), 0),
              static_cast<ssize_t>(frame.size()));
  }

  Addressing ToTransport() const {
    Addressing a;
    a.src_mac = *ParseMac(kFakeMac);
    a.dst_mac = *ParseMac(kSelfMac);
    a.src_ip = 0x0a4d0002;
    a.dst_ip = 0x0a4d0001;
    a.src_port = a.dst_port = 7400;
    return a;
  }

  FrameHeader Header(uint8_t kind) {
    FrameHeader h;
    h.kind = kind;
    h.cluster_id = kCluster;
    h.src_node = kFake;
    h.dst_node = kSelf;
    h.src_epoch = epoch_;
    if (kind != kKindAck) h.seq = h.base_seq = next_seq_++;
    if (kind == kKindMessages) h.fragment_count = 1;
    if (acked_epoch_ != 0) {
      h.flags = kFlagAck;
      h.ack_epoch = acked_epoch_;
      h.ack_seq = expected_;
    }
    return h;
  }

  // A messages frame carrying `messages`, in sequence.
  std::vector<uint8_t> MessagesFrame(const std::vector<std::vector<uint8_t>>& messages) {
    FrameHeader h = Header(kKindMessages);
    h.message_id = next_message_id_;
    next_message_id_ += messages.size();
    h.message_count = static_cast<uint16_t>(messages.size());
    return Seal(h, lab::Records(messages));
  }

  std::vector<uint8_t> Seal(FrameHeader h, const std::vector<uint8_t>& payload) {
    return lab::SealFrame(ToTransport(), h, payload);
  }

  // Receives the transport's frames for `wait_ms`, polling `t` meanwhile;
  // acknowledges its data frames and collects complete messages.
  void Exchange(DpdkTransport& t, int wait_ms, const MessageHandler& handler) {
    const absl::Time end = absl::Now() + absl::Milliseconds(wait_ms);
    std::vector<uint8_t> buffer(16384);
    while (absl::Now() < end) {
      ASSERT_TRUE(t.Poll(handler).ok());
      const ssize_t n = recv(fd_, buffer.data(), buffer.size(), 0);
      if (n <= 0) continue;
      DecodedFrame d;
      if (DecodeFrame(absl::MakeSpan(buffer.data(), static_cast<size_t>(n)),
                      *ParseMac(kFakeMac), 7400, &d) != DecodeResult::kOk) {
        continue;
      }
      ++frames_from_transport_;
      last_header_ = d.header;
      if (!IsData(d.header.kind)) continue;
      if (d.header.src_epoch != acked_epoch_) {
        acked_epoch_ = d.header.src_epoch;
        expected_ = d.header.base_seq;
      }
      if (d.header.seq != expected_) continue;
      ++expected_;
      Collect(d);
      SendRaw(Seal(Header(kKindAck), {}));
    }
  }

  std::vector<std::vector<uint8_t>> received;
  uint64_t frames_from_transport_ = 0;
  FrameHeader last_header_;
  uint64_t epoch_ = 0;

 private:
  void Collect(const DecodedFrame& d) {
    const auto p = d.payload;
    if (d.header.kind == kKindFragment) {
      partial_.insert(partial_.end(), p.begin(), p.end());
      if (d.header.fragment_index + 1 == d.header.fragment_count) {
        received.push_back(partial_);
        partial_.clear();
      }
      return;
    }
    size_t offset = 0;
    for (int i = 0; i < d.header.message_count; ++i) {
      uint32_t length;
      std::memcpy(&length, p.data() + offset, 4);
      received.emplace_back(p.begin() + offset + 4,
                            p.begin() + offset + 4 + length);
      offset += 4 + length;
    }
  }

  int fd_ = -1;
  Seq next_seq_ = 0;
  uint64_t next_message_id_ = 0;
  uint64_t acked_epoch_ = 0;
  Seq expected_ = 0;
  std::vector<uint8_t> partial_;
};

class DpdkTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!g_lab->skip_reason.empty()) {
      std::printf("SKIPPED: %s\n", g_lab->skip_reason.c_str());
      GTEST_SKIP() << g_lab->skip_reason;
    }
  }
};

// First: bad options fail before EAL is touched, so a typo in the cluster
// file costs nothing (EAL could not be initialized again).
TEST_F(DpdkTransportTest, OptionsAreCheckedBeforeEal) {
  TransportOptions o = Options();
  o.peers[0].mac = "";
  EXPECT_TRUE(absl::IsInvalidArgument(DpdkTransport::Create(o, Knobs()).status()));
  o = Options();
  o.peers[0].host = "fake.example";
  EXPECT_TRUE(absl::IsInvalidArgument(DpdkTransport::Create(o, Knobs()).status()));
  o = Options();
  o.eal_args += " --in-memory";
  EXPECT_TRUE(absl::IsInvalidArgument(DpdkTransport::Create(o, Knobs()).status()));
  DpdkOptions bad = Knobs();
  bad.rx_burst_frames = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(DpdkTransport::Create(Options(), bad).status()));
  // The good options still work: EAL was not initialized by the failures.
  absl::StatusOr<std::unique_ptr<DpdkTransport>> t =
      DpdkTransport::Create(Options(), Knobs());
  ASSERT_TRUE(t.ok()) << t.status();
  std::printf("%s\n", (*t)->Describe().c_str());
}

TEST_F(DpdkTransportTest, SetsTheConfiguredMacOnThePort) {
  absl::StatusOr<std::unique_ptr<DpdkTransport>> t =
      DpdkTransport::Create(Options(), Knobs());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(FormatMac((*t)->port().mac), kSelfMac);
  EXPECT_FALSE((*t)->port().promiscuous);
  EXPECT_EQ((*t)->port().mtu_bytes, 1500u);  // af_packet: no jumbo frames.
  // The kernel interface behind the port took the address too.
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", g_lab->veth->iface(0).c_str());
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_EQ(ioctl(fd, SIOCGIFHWADDR, &ifr), 0);
  close(fd);
  MacAddress kernel;
  std::memcpy(kernel.data(), ifr.ifr_hwaddr.sa_data, 6);
  EXPECT_EQ(FormatMac(kernel), kSelfMac);
}

TEST_F(DpdkTransportTest, ExchangesMessagesWithAPeerOnTheWire) {
  absl::StatusOr<std::unique_ptr<DpdkTransport>> created =
      DpdkTransport::Create(Options(), Knobs());
  ASSERT_TRUE(created.ok()) << created.status();
  DpdkTransport& t = **created;
  FakePeer peer;
  std::vector<std::vector<uint8_t>> sent;
  for (size_t size : {0, 1, 100, 1364, 1365, 5000, 70000}) {
    std::vector<uint8_t> m(size);
    for (size_t i = 0; i < size; ++i) m[i] = static_cast<uint8_t>(i * 13 + size);
    ASSERT_TRUE(t.Send(kFake, m).ok());
    sent.push_back(m);
  }
  std::vector<std::vector<uint8_t>> got;
  auto handler = [&](NodeId from, absl::Span<const uint8_t> p) {
    EXPECT_EQ(from, kFake);
    got.emplace_back(p.begin(), p.end());
  };
  peer.Exchange(t, 300, handler);
  EXPECT_EQ(peer.received, sent);
  EXPECT_TRUE(t.Idle(kFake));  // Everything was acknowledged.

  peer.SendRaw(peer.MessagesFrame({{1, 2, 3}, {}, {4}}));
  peer.Exchange(t, 100, handler);
  EXPECT_EQ(got, (std::vector<std::vector<uint8_t>>{{1, 2, 3}, {}, {4}}));
  // The transport acknowledged the peer's frame.
  EXPECT_TRUE(peer.last_header_.flags & kFlagAck);
  EXPECT_EQ(peer.last_header_.ack_epoch, peer.epoch_);
  EXPECT_EQ(peer.last_header_.ack_seq, 1u);

  const TransportStats s = t.Stats();
  EXPECT_EQ(s.messages_sent, sent.size());
  EXPECT_EQ(s.messages_received, 3u);
  EXPECT_GE(s.frames_sent, peer.frames_from_transport_);
  EXPECT_GT(s.bytes_sent, 70000u);
  EXPECT_EQ(s.frames_rejected, 0u);
  EXPECT_EQ(s.retransmissions, 0u);
}

TEST_F(DpdkTransportTest, HostileFramesAreCountedNeverDelivered) {
  absl::StatusOr<std::unique_ptr<DpdkTransport>> created =
      DpdkTransport::Create(Options(), Knobs());
  ASSERT_TRUE(created.ok()) << created.status();
  DpdkTransport& t = **created;
  FakePeer peer;
  int delivered = 0;
  auto handler = [&](NodeId, absl::Span<const uint8_t>) { ++delivered; };
  peer.Exchange(t, 50, handler);
  const TransportStats before = t.Stats();

  FrameHeader foreign = peer.Header(kKindMessages);
  foreign.cluster_id = 99;
  foreign.message_count = 1;
  peer.SendRaw(peer.Seal(foreign, {1, 0, 0, 0, 9}));
  std::vector<uint8_t> damaged = peer.MessagesFrame({{5, 5}});
  damaged.back() ^= 0x10;
  peer.SendRaw(damaged);
  peer.SendRaw(std::vector<uint8_t>(60, 0xab));  // Garbage.
  std::vector<uint8_t> truncated = peer.MessagesFrame({{6, 6, 6, 6}});
  truncated.resize(truncated.size() - 2);
  peer.SendRaw(truncated);
  peer.Exchange(t, 100, handler);
  TransportStats s = t.Stats();
  EXPECT_EQ(delivered, 0);
  EXPECT_EQ(s.frames_foreign - before.frames_foreign, 1u);
  EXPECT_EQ(s.frames_bad_checksum - before.frames_bad_checksum, 1u);
  EXPECT_EQ(s.frames_rejected - before.frames_rejected, 3u);
  EXPECT_GE(s.frames_ignored - before.frames_ignored, 1u);

  // The stream goes on: the damaged and truncated frames used sequence
  // numbers 0 and 1 and were never acknowledged, so the peer resends them
  // (here: anew, as the fake keeps no copies) and then the next.
  FakePeer fresh;  // A new epoch: a clean start for the stream.
  fresh.SendRaw(fresh.MessagesFrame({{7}}));
  fresh.Exchange(t, 100, handler);
  EXPECT_EQ(delivered, 1);
}

// Both doorbells: the PMD's own socket (the default, found among the
// process's descriptors) and the filter socket (the fallback).
void IdleTransportSleepsAndAFrameWakesIt(bool port_socket) {
  DpdkOptions knobs = Knobs();
  knobs.doorbell_on_port_socket = port_socket;
  absl::StatusOr<std::unique_ptr<DpdkTransport>> created =
      DpdkTransport::Create(Options(/*busy_poll=*/false), knobs);
  ASSERT_TRUE(created.ok()) << created.status();
  DpdkTransport& t = **created;
  ASSERT_EQ(t.doorbell(), port_socket ? DoorbellKind::kPortSocket
                                      : DoorbellKind::kFilterSocket)
      << t.Describe();
  int delivered = 0;
  auto handler = [&](NodeId, absl::Span<const uint8_t>) { ++delivered; };
  // Nothing to do: after a few polls the back-off is long.
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(t.Poll(handler).ok());
  }
  EXPECT_FALSE(Readable(t.ReadinessFd()));
  // A frame for us rings the doorbell (in microseconds; the bound here is
  // only against a hung test).
  FakePeer peer;
  const uint64_t rings = t.poll_stats().doorbell_rings;
  peer.SendRaw(peer.MessagesFrame({{1}}));
  EXPECT_TRUE(Readable(t.ReadinessFd(), 5000));
  ASSERT_TRUE(t.Poll(handler).ok());
  EXPECT_EQ(delivered, 1);
  EXPECT_EQ(t.poll_stats().doorbell_rings, rings + 1);
  // Send outside Poll wakes the loop at once, to transmit.
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(t.Poll(handler).ok());
  EXPECT_FALSE(Readable(t.ReadinessFd()));
  ASSERT_TRUE(t.Send(kFake, std::vector<uint8_t>{1}).ok());
  EXPECT_TRUE(Readable(t.ReadinessFd()));
}

TEST_F(DpdkTransportTest, IdleTransportSleepsAndAFrameWakesIt) {
  IdleTransportSleepsAndAFrameWakesIt(/*port_socket=*/true);
}

TEST_F(DpdkTransportTest, IdleTransportWithTheFilterSocketDoorbell) {
  IdleTransportSleepsAndAFrameWakesIt(/*port_socket=*/false);
}

TEST_F(DpdkTransportTest, PartialBurstWaitsForTheFlushDelay) {
  DpdkOptions knobs = Knobs();
  knobs.protocol.rto_us_min = 200000;
  knobs.tx_flush_delay_us = 50000;  // At most half the minimum RTO.
  absl::StatusOr<std::unique_ptr<DpdkTransport>> created =
      DpdkTransport::Create(Options(), knobs);
  ASSERT_TRUE(created.ok()) << created.status();
  DpdkTransport& t = **created;
  FakePeer peer;
  auto handler = [](NodeId, absl::Span<const uint8_t>) {};
  const absl::Time start = absl::Now();
  ASSERT_TRUE(t.Send(kFake, std::vector<uint8_t>{1, 2, 3}).ok());
  ASSERT_TRUE(t.Poll(handler).ok());  // Built and buffered.
  ASSERT_TRUE(t.Poll(handler).ok());  // Nothing new: sleeps until the gate.
  const TransportStats early = t.Stats();
  const bool before_gate = absl::Now() - start < absl::Milliseconds(45);
  if (before_gate) {  // Unless this machine stalled for the whole delay.
    EXPECT_EQ(early.frames_sent, 0u);
  }
  // A loop sleeping on ReadinessFd is woken (by the back-off timer, at the
  // latest when the gate opens) and the Poll after the gate flushes: never
  // earlier than the delay.
  while (t.Stats().frames_sent == 0 &&
         absl::Now() - start < absl::Seconds(5)) {
    Readable(t.ReadinessFd(), 100);
    ASSERT_TRUE(t.Poll(handler).ok());
  }
  EXPECT_EQ(t.Stats().frames_sent, 1u);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  peer.Exchange(t, 50, handler);
  EXPECT_EQ(peer.received, (std::vector<std::vector<uint8_t>>{{1, 2, 3}}));
  created->reset();
  knobs.tx_flush_delay_us = knobs.protocol.rto_us_min;  // Would fire the RTO.
  EXPECT_TRUE(absl::IsInvalidArgument(
      DpdkTransport::Create(Options(), knobs).status()));
}

TEST_F(DpdkTransportTest, BusyPollingIsAlwaysReadable) {
  absl::StatusOr<std::unique_ptr<DpdkTransport>> created =
      DpdkTransport::Create(Options(/*busy_poll=*/true), Knobs());
  ASSERT_TRUE(created.ok()) << created.status();
  DpdkTransport& t = **created;
  EXPECT_FALSE(t.has_doorbell());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(t.Poll([](NodeId, absl::Span<const uint8_t>) {}).ok());
    EXPECT_TRUE(Readable(t.ReadinessFd()));
  }
}

TEST_F(DpdkTransportTest, OneTransportPerProcess) {
  absl::StatusOr<std::unique_ptr<DpdkTransport>> first =
      DpdkTransport::Create(Options(), Knobs());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE((*first)->port().reused);  // Earlier tests set the port up.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      DpdkTransport::Create(Options(), Knobs()).status()));
  first->reset();
  TransportOptions other = Options();
  other.eal_args += " --log-level=notice";  // EAL cannot be set up again.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      DpdkTransport::Create(other, Knobs()).status()));
  EXPECT_TRUE(DpdkTransport::Create(Options(), Knobs()).ok());
}

}  // namespace
}  // namespace blizzard::transport::dpdk

int main(int argc, char** argv) {
  using namespace blizzard::transport::dpdk;
  ::testing::InitGoogleTest(&argc, argv);
  Lab lab;  // The test's network namespaces, shared by every test.
  g_lab = &lab;
  const std::string tag = absl::StrFormat("bzt%d", getpid() % 100000);
  absl::StatusOr<std::unique_ptr<lab::VethLab>> veth =
      lab::VethLab::Create(tag);
  if (absl::IsFailedPrecondition(veth.status())) {
    lab.skip_reason = absl::StrCat(
        "this machine cannot create network namespaces (needs root): ",
        veth.status().ToString());
  } else if (!veth.ok()) {
    std::printf("creating the test's namespaces failed: %s\n",
                veth.status().ToString().c_str());
    return 1;
  } else {
    lab.veth = std::move(*veth);
    lab.prefix = tag;
    lab.veth->OwnEalPrefix(tag);
    for (int end = 0; end < 2; ++end) {
      lab.ns_fd[end] = open(absl::StrCat("/var/run/netns/", lab.veth->ns(end)).c_str(),
                            O_RDONLY | O_CLOEXEC);
    }
    // Still one thread: the whole process moves to the first namespace, and
    // EAL's threads, started later, are born there.
    if (lab.ns_fd[0] < 0 || lab.ns_fd[1] < 0 ||
        setns(lab.ns_fd[0], CLONE_NEWNET) != 0) {
      lab.skip_reason = "cannot enter the test's network namespace";
    }
  }
  const int rc = RUN_ALL_TESTS();
  for (int fd : lab.ns_fd) {
    if (fd >= 0) close(fd);
  }
  lab.veth.reset();
  return rc;
}
