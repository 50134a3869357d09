// Kernel TCP transport: non-blocking sockets, one epoll set, no threads.
//
// Connections: for every peer this node DIALS one outbound connection that it
// only writes to, and ACCEPTS inbound connections that it only reads from.
// Two one-way connections per pair mean no dial race and no tie-breaking.
// The dialer opens with a hello (magic, format version, cluster id, node id);
// the acceptor refuses other clusters, unknown node ids and bad magic by
// closing. Wire format: transport/FORMAT.md.
//
// Time: reconnect back-off and the hello deadline read CLOCK_MONOTONIC inside
// Poll; a timerfd in the epoll set wakes an outer loop when one is due, so
// ReadinessFd alone is enough to know when to call Poll.
//
// Queues: each peer has a send queue bounded by send_queue_bytes_max (frame
// bytes: 16-byte header + payload; an empty queue always accepts one message
// so no legal message is unsendable). Messages for a peer that is not
// connected stay queued and go out on (re)connection, oldest first. A
// connection that breaks mid-frame drops that one frame (the peer discards
// the half it got), never resends half of it.
#ifndef BLIZZARD_TRANSPORT_TCP_TCP_TRANSPORT_H_
#define BLIZZARD_TRANSPORT_TCP_TCP_TRANSPORT_H_

#include <netinet/in.h>
#include <sys/epoll.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "transport/tcp/backoff.h"
#include "transport/tcp/byte_ring.h"
#include "transport/tcp/frame_format.h"
#include "transport/transport.h"

namespace blizzard::transport {

// Knobs specific to TCP; the defaults suit a cluster.
struct TcpOptions {
  // An accepted connection must deliver its hello within this time.
  int hello_timeout_ms = 5000;
  // Accepted connections alive at once (authenticated or not). 0 means
  // 2 * peers + 8: each peer holds one, plus room for restarts overlapping.
  size_t inbound_connections_max = 0;
  // Bytes read from one connection per Poll before moving on (fairness; the
  // level-triggered epoll brings the rest back next Poll).
  size_t read_bytes_per_poll_max = 8u << 20;
  // TCP_USER_TIMEOUT on outbound connections: data unacknowledged for this
  // long fails the connection, so a peer that vanished without FIN or RST
  // (power loss, cable) is noticed and redialed instead of silently filling
  // the queue for the kernel's ~15 minutes of retransmissions. 0: kernel
  // default.
  int user_timeout_ms = 10000;
};

class TcpTransport final : public Transport {
 public:
  // Validates options, resolves peer hosts (blocking getaddrinfo: start-up
  // only), and binds + listens. Dialing starts on the first Poll.
  // A peer whose port is 0 has no address yet: it is not dialed until
  // SetPeerAddress gives one (tests that listen on port 0 use this).
  static absl::StatusOr<std::unique_ptr<TcpTransport>> Create(
      const TransportOptions& options,
      const TcpOptions& tcp_options = TcpOptions());

  ~TcpTransport() override;
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  absl::Status Send(NodeId to, absl::Span<const uint8_t> payload) override;
  // The handler may call Send; it must not call Poll or destroy this object.
  absl::Status Poll(const MessageHandler& handler) override;
  int ReadinessFd() const override { return epoll_fd_; }
  uint16_t ListenPort() const override { return listen_port_; }
  TransportStats Stats() const override { return stats_; }

  // Changes where `peer` is dialed. A live outbound connection to the old
  // address is closed (its partial frame dropped); the queue is kept.
  // InvalidArgument for an unknown peer or an unresolvable host.
  absl::Status SetPeerAddress(NodeId peer, const std::string& host,
                              uint16_t port);

  // Introspection for tests and INFO.
  // Stats: `connects`/`disconnects` count both directions (outbound
  // connections established, inbound connections that passed the hello).
  bool OutboundConnected(NodeId peer) const;
  size_t QueuedBytes(NodeId peer) const;

 private:
  enum class OutState { kIdle, kConnecting, kConnected };

  struct Peer {
    Peer(const PeerAddress& address, size_t queue_bytes_max, int backoff_ms_min,
         int backoff_ms_max)
        : address(address),
          queue(queue_bytes_max),
          backoff(backoff_ms_min, backoff_ms_max) {}

    PeerAddress address;
    sockaddr_in sockaddr{};
    tcp::ByteRing queue;
    tcp::Backoff backoff;
    OutState state = OutState::kIdle;
    int fd = -1;
    uint32_t generation = 0;  // Bumped per dial; stale epoll events skip.
    int64_t dial_at_us = 0;   // When kIdle: earliest next dial.
    int64_t connected_at_us = 0;
    tcp::HelloBytes hello{};
    size_t hello_written = tcp::kHelloBytes;  // == kHelloBytes: none pending.
    // Bytes of the head frame not yet written; nonzero only mid-frame.
    size_t head_frame_left = 0;
    bool want_write = false;  // EPOLLOUT registered (socket buffer full).
  };

  struct Inbound {
    uint64_t id = 0;
    int fd = -1;
    bool authenticated = false;
    NodeId from = 0;
    int64_t hello_deadline_us = 0;
    std::unique_ptr<uint8_t[]> buffer;
    size_t capacity = 0;
    size_t begin = 0;  // Unparsed bytes are [begin, end).
    size_t end = 0;
  };

  TcpTransport(const TransportOptions& options, const TcpOptions& tcp_options);
  absl::Status Init();

  // Outbound side.
  void Dial(Peer& peer, int64_t now_us);
  void OnConnected(Peer& peer, int64_t now_us);
  void Disconnect(Peer& peer, int64_t now_us);
  void Flush(Peer& peer, int64_t now_us);
  void AccountWritten(Peer& peer, size_t bytes);
  void SetWantWrite(Peer& peer, bool want_write);
  void HandleOutboundEvent(Peer& peer, uint32_t events, int64_t now_us);

  // Inbound side.
  void AcceptAll(int64_t now_us);
  // Both return false when the connection must be closed.
  bool ReadInbound(Inbound& conn, const MessageHandler& handler,
                   size_t bytes_max);
  bool ParseInbound(Inbound& conn, const MessageHandler& handler);
  // Makes room to read into and returns the total size of the unit being
  // assembled (hello, header, or whole frame).
  size_t MakeRoom(Inbound& conn);
  void CloseInbound(uint64_t id);
  void ExpireHellos(int64_t now_us);

  void ArmTimer();
  Peer* FindPeer(NodeId id);
  const Peer* FindPeer(NodeId id) const;

  static constexpr int kEventsMax = 128;

  TransportOptions options_;
  TcpOptions tcp_options_;
  int epoll_fd_ = -1;
  int listen_fd_ = -1;
  int timer_fd_ = -1;
  int wake_fd_ = -1;
  uint16_t listen_port_ = 0;
  std::vector<Peer> peers_;
  absl::flat_hash_map<NodeId, size_t> peer_index_;
  // unique_ptr: references stay valid while other entries come and go (a
  // new hello closes the same peer's older connection mid-parse).
  absl::flat_hash_map<uint64_t, std::unique_ptr<Inbound>> inbound_;
  absl::flat_hash_map<NodeId, uint64_t> inbound_by_peer_;
  uint64_t inbound_id_next_ = 1;
  size_t unauthenticated_count_ = 0;
  int64_t timer_armed_us_ = 0;  // 0: disarmed.
  bool wake_pending_ = false;
  bool in_poll_ = false;
  std::array<epoll_event, kEventsMax> events_{};
  TransportStats stats_;
};

// The direct constructor for tests and tools; same as TcpTransport::Create.
absl::StatusOr<std::unique_ptr<Transport>> CreateTcpTransport(
    const TransportOptions& options,
    const TcpOptions& tcp_options = TcpOptions());

}  // namespace blizzard::transport

#endif  // BLIZZARD_TRANSPORT_TCP_TCP_TRANSPORT_H_
