// The transport interface: moving opaque messages between node ids.
//
// Implementations (each its own cc_library, chosen at link time):
//   //transport:tcp   kernel TCP sockets + epoll (the fallback)
//   //transport:sim   in-process, deterministic, seeded faults (tests)
//   //transport/dpdk  user-space Ethernet (the primary; later)
//
// Threading: a Transport is used from one thread (the node's event loop).
// Nothing here blocks: Send queues, Poll drains what has arrived.
#ifndef BLIZZARD_TRANSPORT_TRANSPORT_H_
#define BLIZZARD_TRANSPORT_TRANSPORT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace blizzard::transport {

using NodeId = uint64_t;

// Hard limit on one message's payload. Larger sends are rejected with
// InvalidArgument; a peer announcing a larger frame is disconnected.
inline constexpr size_t kMessageBytesMax = 64u << 20;  // 64 MiB

struct PeerAddress {
  NodeId id = 0;
  std::string host;   // IPv4 address or host name.
  uint16_t port = 0;  // Peer (not client) port.
};

struct TransportOptions {
  uint64_t cluster_id = 0;  // Messages from another cluster are refused.
  NodeId self = 0;
  std::string listen_host = "0.0.0.0";
  uint16_t listen_port = 0;           // 0: pick a free port (tests).
  std::vector<PeerAddress> peers;     // Every other member.
  size_t send_queue_bytes_max = 64u << 20;  // Per peer.
  size_t message_bytes_max = kMessageBytesMax;
  int reconnect_backoff_ms_min = 10;
  int reconnect_backoff_ms_max = 1000;
};

// Checks what every implementation relies on: 0 < message_bytes_max <=
// kMessageBytesMax, send_queue_bytes_max > 0, 0 < back-off min <= max, and
// peers unique and not self. InvalidArgument naming the first problem.
absl::Status ValidateTransportOptions(const TransportOptions& options);

struct TransportStats {
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  uint64_t bytes_sent = 0;      // Payload + framing actually written.
  uint64_t bytes_received = 0;
  uint64_t messages_dropped = 0;  // Queue full, peer down, malformed.
  uint64_t connects = 0;
  uint64_t disconnects = 0;
  // Peers refused at connection set-up: bad magic or version, another
  // cluster, an unknown node id, no hello in time, too many connections.
  uint64_t handshakes_rejected = 0;
  // Malformed frames from an accepted peer (bad checksum, oversize length,
  // unknown kind); each one also closes its connection.
  uint64_t frames_rejected = 0;
};

// Called once per received message. The span is valid only during the call.
using MessageHandler =
    std::function<void(NodeId from, absl::Span<const uint8_t> payload)>;

class Transport {
 public:
  virtual ~Transport() = default;

  // Queues `payload` for `to`. Returns:
  //   OK                 queued (delivery is best effort, like a network:
  //                      messages to a dead peer are dropped and counted)
  //   InvalidArgument    unknown peer, or payload > message_bytes_max
  //   ResourceExhausted  the peer's send queue is full (message dropped)
  // The payload is copied before returning.
  virtual absl::Status Send(NodeId to, absl::Span<const uint8_t> payload) = 0;

  // Does all pending I/O without blocking: accepts, connects, reads, writes,
  // and calls `handler` for every complete message received. Returns an
  // error only for failures of the transport itself (not of a peer).
  virtual absl::Status Poll(const MessageHandler& handler) = 0;

  // A file descriptor that becomes readable when Poll has work to do, for an
  // event loop to wait on (an epoll fd for TCP). -1 if the transport must be
  // polled (busy-polling datapaths): the caller then polls at its own rate.
  virtual int ReadinessFd() const = 0;

  // The port actually listened on (useful with listen_port = 0).
  virtual uint16_t ListenPort() const = 0;

  virtual TransportStats Stats() const = 0;
};

// Every transport implementation library defines this factory; the node
// binary links exactly one, so the transport is chosen at link time.
absl::StatusOr<std::unique_ptr<Transport>> CreateTransport(
    const TransportOptions& options);

// Name of the linked implementation ("tcp", "dpdk", ...), for INFO.
const char* TransportName();

}  // namespace blizzard::transport

#endif  // BLIZZARD_TRANSPORT_TRANSPORT_H_
