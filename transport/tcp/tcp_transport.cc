#include "transport/tcp/tcp_transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_format.h"

namespace blizzard::transport {
namespace {

using tcp::kFrameHeaderBytes;
using tcp::kHelloBytes;

// epoll tokens: the kind in the top byte; the rest names the connection so an
// event for a connection closed earlier in the same batch is recognised.
enum TokenKind : uint64_t {
  kTokenListen = 1,
  kTokenTimer = 2,
  kTokenWake = 3,
  kTokenOutbound = 4,  // | peer index << 32 | dial generation
  kTokenInbound = 5,   // | inbound connection id (< 2^56)
};
constexpr int kTokenKindShift = 56;
constexpr uint64_t kTokenIdMask = (uint64_t{1} << kTokenKindShift) - 1;

constexpr int kAcceptsPerPollMax = 64;
constexpr size_t kInboundBufferInitial = 64u << 10;
// A connection's buffer that grew for one large frame is freed once empty if
// larger than this, so a burst of big messages does not pin memory.
constexpr size_t kInboundBufferKeepMax = 4u << 20;

uint64_t OutboundToken(size_t peer_index, uint32_t generation) {
  return (uint64_t{kTokenOutbound} << kTokenKindShift) |
         (uint64_t{peer_index} << 32) | generation;
}

int64_t NowUs() {
  timespec ts;
  ABSL_RAW_CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0,
                 "clock_gettime(CLOCK_MONOTONIC) failed");
  return int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000;
}

absl::Status ErrnoStatus(const char* what) {
  return absl::InternalError(
      absl::StrFormat("%s: %s", what, std::strerror(errno)));
}

absl::StatusOr<sockaddr_in> Resolve(const std::string& host, uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1) return addr;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc != 0 || result == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot resolve host '%s': %s", host, gai_strerror(rc)));
  }
  addr.sin_addr =
      reinterpret_cast<const sockaddr_in*>(result->ai_addr)->sin_addr;
  freeaddrinfo(result);
  return addr;
}

absl::Status Validate(const TransportOptions& options,
                      const TcpOptions& tcp_options) {
  if (absl::Status s = ValidateTransportOptions(options); !s.ok()) return s;
  if (tcp_options.hello_timeout_ms <= 0 ||
      tcp_options.read_bytes_per_poll_max == 0 ||
      tcp_options.user_timeout_ms < 0) {
    return absl::InvalidArgumentError(
        "hello_timeout_ms and read_bytes_per_poll_max must be > 0, "
        "user_timeout_ms >= 0");
  }
  for (const PeerAddress& peer : options.peers) {
    if (peer.host.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("peer %d has no host", peer.id));
    }
  }
  return absl::OkStatus();
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpTransport>> TcpTransport::Create(
    const TransportOptions& options, const TcpOptions& tcp_options) {
  if (absl::Status s = Validate(options, tcp_options); !s.ok()) return s;
  std::unique_ptr<TcpTransport> transport(
      new TcpTransport(options, tcp_options));
  if (absl::Status s = transport->Init(); !s.ok()) return s;
  return transport;
}

absl::StatusOr<std::unique_ptr<Transport>> CreateTcpTransport(
    const TransportOptions& options, const TcpOptions& tcp_options) {
  absl::StatusOr<std::unique_ptr<TcpTransport>> transport =
      TcpTransport::Create(options, tcp_options);
  if (!transport.ok()) return transport.status();
  return std::unique_ptr<Transport>(std::move(*transport));
}

TcpTransport::TcpTransport(const TransportOptions& options,
                           const TcpOptions& tcp_options)
    : options_(options), tcp_options_(tcp_options) {
  if (tcp_options_.inbound_connections_max == 0) {
    tcp_options_.inbound_connections_max = 2 * options_.peers.size() + 8;
  }
}

absl::Status TcpTransport::Init() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return ErrnoStatus("epoll_create1");
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) return ErrnoStatus("timerfd_create");
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return ErrnoStatus("eventfd");

  absl::StatusOr<sockaddr_in> listen_addr =
      Resolve(options_.listen_host, options_.listen_port);
  if (!listen_addr.ok()) return listen_addr.status();
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return ErrnoStatus("socket");
  int one = 1;
  // A restarted node must rebind its port while old connections linger in
  // TIME_WAIT.
  if (setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) <
      0) {
    return ErrnoStatus("setsockopt(SO_REUSEADDR)");
  }
  if (bind(listen_fd_, reinterpret_cast<const sockaddr*>(&*listen_addr),
           sizeof(*listen_addr)) < 0) {
    return absl::UnavailableError(absl::StrFormat(
        "bind %s:%d: %s", options_.listen_host, options_.listen_port,
        std::strerror(errno)));
  }
  if (listen(listen_fd_, SOMAXCONN) < 0) return ErrnoStatus("listen");
  sockaddr_in bound{};
  socklen_t bound_len = sizeof(bound);
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound),
                  &bound_len) < 0) {
    return ErrnoStatus("getsockname");
  }
  listen_port_ = ntohs(bound.sin_port);

  for (auto [fd, kind] : {std::pair{listen_fd_, kTokenListen},
                          std::pair{timer_fd_, kTokenTimer},
                          std::pair{wake_fd_, kTokenWake}}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = uint64_t{kind} << kTokenKindShift;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
      return ErrnoStatus("epoll_ctl(ADD)");
    }
  }

  // The queue holds frames; an empty queue takes one maximal message.
  const size_t ring_bytes_max =
      std::max(options_.send_queue_bytes_max,
               kFrameHeaderBytes + options_.message_bytes_max);
  peers_.reserve(options_.peers.size());
  for (const PeerAddress& address : options_.peers) {
    peer_index_[address.id] = peers_.size();
    Peer& peer = peers_.emplace_back(address, ring_bytes_max,
                                     options_.reconnect_backoff_ms_min,
                                     options_.reconnect_backoff_ms_max);
    if (address.port != 0) {
      absl::StatusOr<sockaddr_in> addr = Resolve(address.host, address.port);
      if (!addr.ok()) return addr.status();
      peer.sockaddr = *addr;
    }
  }
  ABSL_RAW_CHECK(peers_.size() < (size_t{1} << 24), "too many peers");
  return absl::OkStatus();
}

TcpTransport::~TcpTransport() {
  for (Peer& peer : peers_) CloseFd(peer.fd);
  for (auto& [id, conn] : inbound_) CloseFd(conn->fd);
  CloseFd(listen_fd_);
  CloseFd(timer_fd_);
  CloseFd(wake_fd_);
  CloseFd(epoll_fd_);
}

TcpTransport::Peer* TcpTransport::FindPeer(NodeId id) {
  auto it = peer_index_.find(id);
  return it == peer_index_.end() ? nullptr : &peers_[it->second];
}

const TcpTransport::Peer* TcpTransport::FindPeer(NodeId id) const {
  auto it = peer_index_.find(id);
  return it == peer_index_.end() ? nullptr : &peers_[it->second];
}

bool TcpTransport::OutboundConnected(NodeId id) const {
  const Peer* peer = FindPeer(id);
  return peer != nullptr && peer->state == OutState::kConnected;
}

size_t TcpTransport::QueuedBytes(NodeId id) const {
  const Peer* peer = FindPeer(id);
  return peer == nullptr ? 0 : peer->queue.size();
}

absl::Status TcpTransport::Send(NodeId to, absl::Span<const uint8_t> payload) {
  Peer* peer = FindPeer(to);
  if (peer == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat("unknown peer %d", to));
  }
  if (payload.size() > options_.message_bytes_max) {
    return absl::InvalidArgumentError(
        absl::StrFormat("message of %d bytes exceeds message_bytes_max %d",
                        payload.size(), options_.message_bytes_max));
  }
  const size_t frame_bytes = kFrameHeaderBytes + payload.size();
  if (!peer->queue.empty() &&
      peer->queue.size() + frame_bytes > options_.send_queue_bytes_max) {
    ++stats_.messages_dropped;
    return absl::ResourceExhaustedError(absl::StrFormat(
        "send queue to peer %d full (%d bytes queued)", to,
        peer->queue.size()));
  }
  const tcp::FrameHeaderBytes header = tcp::EncodeFrameHeader(payload);
  bool appended = peer->queue.Append(header, payload);
  ABSL_RAW_CHECK(appended, "send queue bound checked above");
  // Make ReadinessFd readable so an outer loop that blocks on it calls Poll
  // to write this. Not needed inside Poll (it flushes before returning), nor
  // when nothing can be written yet (the connect or EPOLLOUT will wake it).
  if (!in_poll_ && !wake_pending_ && peer->state == OutState::kConnected &&
      !peer->want_write) {
    uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof(one)) == sizeof(one)) wake_pending_ = true;
  }
  return absl::OkStatus();
}

absl::Status TcpTransport::SetPeerAddress(NodeId id, const std::string& host,
                                          uint16_t port) {
  Peer* peer = FindPeer(id);
  if (peer == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat("unknown peer %d", id));
  }
  if (host.empty()) return absl::InvalidArgumentError("empty host");
  sockaddr_in addr{};
  if (port != 0) {
    absl::StatusOr<sockaddr_in> resolved = Resolve(host, port);
    if (!resolved.ok()) return resolved.status();
    addr = *resolved;
  }
  if (peer->state != OutState::kIdle) Disconnect(*peer, NowUs());
  peer->address.host = host;
  peer->address.port = port;
  peer->sockaddr = addr;
  peer->backoff.Reset();
  peer->dial_at_us = 0;  // Dial on the next Poll.
  if (!in_poll_ && !wake_pending_) {
    uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof(one)) == sizeof(one)) wake_pending_ = true;
  }
  return absl::OkStatus();
}

absl::Status TcpTransport::Poll(const MessageHandler& handler) {
  ABSL_RAW_CHECK(!in_poll_, "Poll re-entered from its own handler");
  ABSL_RAW_CHECK(handler != nullptr, "Poll needs a handler");
  in_poll_ = true;
  absl::Cleanup leave = [this] { in_poll_ = false; };
  const int64_t now_us = NowUs();

  int n = epoll_wait(epoll_fd_, events_.data(), kEventsMax, 0);
  if (n < 0) {
    if (errno != EINTR) return ErrnoStatus("epoll_wait");
    n = 0;
  }
  for (int i = 0; i < n; ++i) {
    const uint64_t token = events_[i].data.u64;
    const uint32_t events = events_[i].events;
    switch (token >> kTokenKindShift) {
      case kTokenListen:
        AcceptAll(now_us);
        break;
      case kTokenTimer: {
        uint64_t expirations;
        (void)!read(timer_fd_, &expirations, sizeof(expirations));
        timer_armed_us_ = 0;  // One-shot: it is disarmed once fired.
        break;
      }
      case kTokenWake:
        break;  // Drained below, after the flush it asked for.
      case kTokenOutbound: {
        const size_t index = (token & kTokenIdMask) >> 32;
        const uint32_t generation = static_cast<uint32_t>(token);
        ABSL_RAW_CHECK(index < peers_.size(), "outbound token out of range");
        Peer& peer = peers_[index];
        if (peer.fd >= 0 && peer.generation == generation) {
          HandleOutboundEvent(peer, events, now_us);
        }
        break;
      }
      case kTokenInbound: {
        const uint64_t id = token & kTokenIdMask;
        auto it = inbound_.find(id);
        if (it == inbound_.end()) break;  // Closed earlier in this batch.
        if (!ReadInbound(*it->second, handler,
                         tcp_options_.read_bytes_per_poll_max)) {
          CloseInbound(id);
        }
        break;
      }
      default:
        ABSL_RAW_CHECK(false, "unknown epoll token");
    }
  }

  ExpireHellos(now_us);
  for (Peer& peer : peers_) {
    if (peer.state == OutState::kIdle && peer.address.port != 0 &&
        now_us >= peer.dial_at_us) {
      Dial(peer, now_us);
    }
    if (peer.state == OutState::kConnected && !peer.want_write &&
        (!peer.queue.empty() || peer.hello_written < kHelloBytes)) {
      Flush(peer, now_us);
    }
  }
  if (wake_pending_) {
    uint64_t count;
    (void)!read(wake_fd_, &count, sizeof(count));
    wake_pending_ = false;
  }
  ArmTimer();
  return absl::OkStatus();
}

// ---- Outbound side --------------------------------------------------------

void TcpTransport::Dial(Peer& peer, int64_t now_us) {
  ABSL_RAW_CHECK(peer.state == OutState::kIdle && peer.fd < 0,
                 "dial while a connection exists");
  const size_t index = static_cast<size_t>(&peer - peers_.data());
  ++peer.generation;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  bool connected = false;
  if (fd >= 0) {
    int one = 1;
    // Raft messages are latency-bound; batching is done above, not by Nagle.
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (tcp_options_.user_timeout_ms > 0) {
      unsigned int timeout_ms = tcp_options_.user_timeout_ms;
      setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms,
                 sizeof(timeout_ms));
    }
    int rc = connect(fd, reinterpret_cast<const sockaddr*>(&peer.sockaddr),
                     sizeof(peer.sockaddr));
    connected = rc == 0;
    if (rc < 0 && errno != EINPROGRESS) CloseFd(fd);
  }
  if (fd >= 0) {
    epoll_event ev{};
    ev.events = connected ? (EPOLLIN | EPOLLRDHUP) : EPOLLOUT;
    ev.data.u64 = OutboundToken(index, peer.generation);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) CloseFd(fd);
  }
  if (fd < 0) {  // Refused at once, or out of descriptors: try again later.
    peer.dial_at_us = now_us + peer.backoff.Next() * 1000;
    return;
  }
  peer.fd = fd;
  peer.state = OutState::kConnecting;
  if (connected) OnConnected(peer, now_us);
}

void TcpTransport::OnConnected(Peer& peer, int64_t now_us) {
  ABSL_RAW_CHECK(peer.state == OutState::kConnecting && peer.fd >= 0,
                 "connected without a connecting socket");
  ABSL_RAW_CHECK(peer.head_frame_left == 0, "new connection starts mid-frame");
  peer.state = OutState::kConnected;
  peer.connected_at_us = now_us;
  peer.hello = tcp::EncodeHello(options_.cluster_id, options_.self);
  peer.hello_written = 0;
  ++stats_.connects;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.u64 = OutboundToken(static_cast<size_t>(&peer - peers_.data()),
                              peer.generation);
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, peer.fd, &ev);
  peer.want_write = false;
  Flush(peer, now_us);
}

void TcpTransport::Disconnect(Peer& peer, int64_t now_us) {
  if (peer.fd >= 0) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, peer.fd, nullptr);
    CloseFd(peer.fd);
  }
  if (peer.state == OutState::kConnected) {
    ++stats_.disconnects;
    // Only a connection that stayed up proves the peer healthy; one the peer
    // drops at once (it refuses us) keeps backing off.
    if (now_us - peer.connected_at_us >=
        peer.backoff.delay_ms_max() * 1000) {
      peer.backoff.Reset();
    }
  }
  if (peer.head_frame_left > 0) {
    // The peer got a prefix of this frame and discards it; resending the
    // rest would be garbage on a fresh connection, so the message is lost.
    peer.queue.Consume(peer.head_frame_left);
    peer.head_frame_left = 0;
    ++stats_.messages_dropped;
  }
  peer.hello_written = kHelloBytes;
  peer.want_write = false;
  peer.state = OutState::kIdle;
  peer.dial_at_us = now_us + peer.backoff.Next() * 1000;
}

void TcpTransport::HandleOutboundEvent(Peer& peer, uint32_t events,
                                       int64_t now_us) {
  if (peer.state == OutState::kConnecting) {
    int error = 0;
    socklen_t len = sizeof(error);
    if (getsockopt(peer.fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0) {
      error = errno;
    }
    if (error != 0 || (events & EPOLLOUT) == 0) {
      Disconnect(peer, now_us);
    } else {
      OnConnected(peer, now_us);
    }
    return;
  }
  ABSL_RAW_CHECK(peer.state == OutState::kConnected,
                 "event on an idle outbound connection");
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    // The acceptor never writes: readable means it closed (0), reset
    // (error), or broke protocol (data).
    uint8_t scratch[64];
    ssize_t got = recv(peer.fd, scratch, sizeof(scratch), MSG_DONTWAIT);
    if (got > 0) ++stats_.frames_rejected;
    if (got >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
                     errno != EINTR) ||
        (events & (EPOLLHUP | EPOLLERR))) {
      Disconnect(peer, now_us);
      return;
    }
  }
  if (events & EPOLLOUT) Flush(peer, now_us);
}

void TcpTransport::SetWantWrite(Peer& peer, bool want_write) {
  if (peer.want_write == want_write) return;
  peer.want_write = want_write;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (want_write ? uint32_t{EPOLLOUT} : 0u);
  ev.data.u64 = OutboundToken(static_cast<size_t>(&peer - peers_.data()),
                              peer.generation);
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, peer.fd, &ev);
}

void TcpTransport::Flush(Peer& peer, int64_t now_us) {
  ABSL_RAW_CHECK(peer.state == OutState::kConnected, "flush while not connected");
  while (true) {
    iovec iov[3];
    int count = 0;
    if (peer.hello_written < kHelloBytes) {
      iov[0].iov_base = peer.hello.data() + peer.hello_written;
      iov[0].iov_len = kHelloBytes - peer.hello_written;
      count = 1;
    }
    count += peer.queue.Readable(iov + count);
    if (count == 0) {
      SetWantWrite(peer, false);
      return;
    }
    size_t total = 0;
    for (int i = 0; i < count; ++i) total += iov[i].iov_len;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    // MSG_NOSIGNAL: a peer that vanished is an error code, not SIGPIPE.
    ssize_t wrote = sendmsg(peer.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (wrote < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        SetWantWrite(peer, true);
      } else {
        Disconnect(peer, now_us);
      }
      return;
    }
    AccountWritten(peer, static_cast<size_t>(wrote));
    if (static_cast<size_t>(wrote) < total) {  // Socket buffer full.
      SetWantWrite(peer, true);
      return;
    }
  }
}

void TcpTransport::AccountWritten(Peer& peer, size_t bytes) {
  stats_.bytes_sent += bytes;
  const size_t hello_part = std::min(bytes, kHelloBytes - peer.hello_written);
  peer.hello_written += hello_part;
  bytes -= hello_part;
  while (bytes > 0) {
    if (peer.head_frame_left == 0) {  // At a frame boundary: read its size.
      tcp::FrameHeaderBytes header;
      peer.queue.Peek(0, absl::MakeSpan(header));
      peer.head_frame_left =
          kFrameHeaderBytes + tcp::DecodeFrameHeader(header).payload_bytes;
    }
    const size_t take = std::min(bytes, peer.head_frame_left);
    peer.queue.Consume(take);
    peer.head_frame_left -= take;
    bytes -= take;
    if (peer.head_frame_left == 0) ++stats_.messages_sent;
  }
}

// ---- Inbound side ---------------------------------------------------------

void TcpTransport::AcceptAll(int64_t now_us) {
  for (int i = 0; i < kAcceptsPerPollMax; ++i) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN, or out of descriptors/memory: retried next Poll.
    }
    if (inbound_.size() >= tcp_options_.inbound_connections_max) {
      close(fd);
      ++stats_.handshakes_rejected;
      continue;
    }
    auto conn = std::make_unique<Inbound>();
    conn->id = inbound_id_next_++;
    conn->fd = fd;
    conn->hello_deadline_us =
        now_us + int64_t{tcp_options_.hello_timeout_ms} * 1000;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = (uint64_t{kTokenInbound} << kTokenKindShift) | conn->id;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      continue;
    }
    ++unauthenticated_count_;
    inbound_.emplace(conn->id, std::move(conn));
  }
}

size_t TcpTransport::MakeRoom(Inbound& conn) {
  const size_t pending = conn.end - conn.begin;
  if (pending == 0) {
    conn.begin = conn.end = 0;
    if (conn.capacity > kInboundBufferKeepMax) {
      conn.buffer.reset();
      conn.capacity = 0;
    }
  }
  // Bytes the next unit (hello, header, or whole frame) needs in total. A
  // frame's length was validated by ParseInbound as soon as its header came.
  size_t needed = kFrameHeaderBytes;
  if (!conn.authenticated) {
    needed = kHelloBytes;
  } else if (pending >= kFrameHeaderBytes) {
    needed = kFrameHeaderBytes +
             tcp::DecodeFrameHeader({&conn.buffer[conn.begin], pending})
                 .payload_bytes;
  }
  ABSL_RAW_CHECK(pending < needed, "a complete unit was left unparsed");
  if (conn.begin + needed <= conn.capacity && conn.end < conn.capacity) {
    return needed;
  }
  if (needed <= conn.capacity) {  // Slide the partial unit to the front.
    std::memmove(&conn.buffer[0], &conn.buffer[conn.begin], pending);
  } else {
    const size_t frame_bytes_max =
        kFrameHeaderBytes + options_.message_bytes_max;
    size_t capacity = std::max(needed, std::min(frame_bytes_max,
                                                std::max(kInboundBufferInitial,
                                                         conn.capacity * 2)));
    auto buffer = std::make_unique_for_overwrite<uint8_t[]>(capacity);
    if (pending > 0) {
      std::memcpy(&buffer[0], &conn.buffer[conn.begin], pending);
    }
    conn.buffer = std::move(buffer);
    conn.capacity = capacity;
  }
  conn.begin = 0;
  conn.end = pending;
  ABSL_RAW_CHECK(conn.end < conn.capacity, "no room made");
  return needed;
}

bool TcpTransport::ReadInbound(Inbound& conn, const MessageHandler& handler,
                               size_t bytes_max) {
  size_t read_total = 0;
  while (read_total < bytes_max) {
    const size_t needed = MakeRoom(conn);
    size_t room = conn.capacity - conn.end;
    if (needed > kInboundBufferInitial) {
      // Inside a large frame, read exactly up to its end: the buffer then
      // empties when it is parsed, instead of sliding a partial next frame
      // to the front after every large one.
      room = std::min(room, needed - (conn.end - conn.begin));
    }
    ssize_t got = read(conn.fd, &conn.buffer[conn.end], room);
    if (got == 0) return false;  // Orderly close by the peer.
    if (got < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    conn.end += static_cast<size_t>(got);
    read_total += static_cast<size_t>(got);
    stats_.bytes_received += static_cast<size_t>(got);
    if (!ParseInbound(conn, handler)) return false;
    // A short read means the socket is drained; level-triggered epoll
    // reports anything that arrives later (including EOF).
    if (static_cast<size_t>(got) < room) return true;
  }
  return true;
}

bool TcpTransport::ParseInbound(Inbound& conn, const MessageHandler& handler) {
  while (true) {
    const uint8_t* p = &conn.buffer[conn.begin];
    const size_t pending = conn.end - conn.begin;
    if (!conn.authenticated) {
      if (pending < kHelloBytes) return true;
      absl::StatusOr<tcp::Hello> hello = tcp::DecodeHello({p, kHelloBytes});
      if (!hello.ok() || hello->cluster_id != options_.cluster_id ||
          FindPeer(hello->node_id) == nullptr) {
        ++stats_.handshakes_rejected;
        return false;
      }
      conn.begin += kHelloBytes;
      conn.authenticated = true;
      conn.from = hello->node_id;
      --unauthenticated_count_;
      ++stats_.connects;
      auto [it, inserted] = inbound_by_peer_.try_emplace(conn.from, conn.id);
      if (!inserted) {
        // The peer redialed (it restarted, or its old connection broke):
        // deliver what the old connection still holds, which is older than
        // anything on this one, then close it. One connection per peer.
        const uint64_t old_id = std::exchange(it->second, conn.id);
        auto old = inbound_.find(old_id);
        ABSL_RAW_CHECK(old != inbound_.end() && old_id != conn.id,
                       "peer map names a missing connection");
        ReadInbound(*old->second, handler,
                    tcp_options_.read_bytes_per_poll_max);
        CloseInbound(old_id);
      }
      continue;
    }
    if (pending < kFrameHeaderBytes) return true;
    const tcp::FrameHeader header =
        tcp::DecodeFrameHeader({p, kFrameHeaderBytes});
    if (header.kind != tcp::kFrameKindMessage ||
        header.payload_bytes > options_.message_bytes_max) {
      ++stats_.frames_rejected;
      return false;
    }
    const size_t frame_bytes = kFrameHeaderBytes + header.payload_bytes;
    if (pending < frame_bytes) return true;
    const absl::Span<const uint8_t> payload(p + kFrameHeaderBytes,
                                            header.payload_bytes);
    if (!tcp::PayloadMatches(header, payload)) {
      ++stats_.frames_rejected;
      return false;
    }
    conn.begin += frame_bytes;
    ++stats_.messages_received;
    // The buffer is not touched while the handler runs (Send only touches
    // outbound queues), so the span stays valid for the call.
    handler(conn.from, payload);
  }
}

void TcpTransport::CloseInbound(uint64_t id) {
  auto it = inbound_.find(id);
  ABSL_RAW_CHECK(it != inbound_.end(), "closing an unknown connection");
  Inbound& conn = *it->second;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, conn.fd, nullptr);
  CloseFd(conn.fd);
  if (conn.authenticated) {
    auto by_peer = inbound_by_peer_.find(conn.from);
    if (by_peer != inbound_by_peer_.end() && by_peer->second == id) {
      inbound_by_peer_.erase(by_peer);
    }
    ++stats_.disconnects;
  } else {
    --unauthenticated_count_;
  }
  inbound_.erase(it);
}

void TcpTransport::ExpireHellos(int64_t now_us) {
  if (unauthenticated_count_ == 0) return;
  std::vector<uint64_t> expired;
  for (const auto& [id, conn] : inbound_) {
    if (!conn->authenticated && conn->hello_deadline_us <= now_us) {
      expired.push_back(id);
    }
  }
  for (uint64_t id : expired) {
    ++stats_.handshakes_rejected;
    CloseInbound(id);
  }
}

void TcpTransport::ArmTimer() {
  int64_t deadline_us = 0;
  auto consider = [&deadline_us](int64_t at_us) {
    if (deadline_us == 0 || at_us < deadline_us) deadline_us = at_us;
  };
  for (const Peer& peer : peers_) {
    if (peer.state == OutState::kIdle && peer.address.port != 0) {
      consider(peer.dial_at_us);
    }
  }
  if (unauthenticated_count_ > 0) {
    for (const auto& [id, conn] : inbound_) {
      if (!conn->authenticated) consider(conn->hello_deadline_us);
    }
  }
  if (deadline_us == timer_armed_us_) return;
  itimerspec spec{};
  if (deadline_us > 0) {
    spec.it_value.tv_sec = deadline_us / 1000000;
    spec.it_value.tv_nsec = (deadline_us % 1000000) * 1000;
  }
  if (timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr) == 0) {
    timer_armed_us_ = deadline_us;
  }
}

}  // namespace blizzard::transport
