// The transport interface: moving opaque messages between node ids.
//
// Implementations (each its own cc_library, chosen at link time):
//   //transport:tcp   kernel TCP sockets + epoll (the fallback)
//   //transport:sim   in-process, deterministic, seeded faults (tests)
//   //transport:dpdk  user-space Ethernet via DPDK (the primary; one per
//                     process: EAL is initialized once)
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
// The IP MTU a datagram transport (DPDK) may be told to use: 576 is what
// every IPv4 link carries; 65000 stays below IPv4's 16-bit total length and
// an mbuf's 16-bit data room with its headroom.
inline constexpr size_t kLinkMtuBytesMin = 576;
inline constexpr size_t kLinkMtuBytesMax = 65000;

struct PeerAddress {
  NodeId id = 0;
  std::string host;   // IPv4 address or host name.
  uint16_t port = 0;  // Peer (not client) port.
  // DPDK transport only (others ignore it): the peer's MAC address,
  // "aa:bb:cc:dd:ee:ff". Required by DPDK, which addresses frames by MAC.
  // The initializer keeps {id, host, port} aggregates free of
  // -Wmissing-field-initializers.
  std::string mac = {};
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

  // DPDK transport only (others ignore these). See transport/dpdk/README.md.
  // This node's EAL arguments from the cluster file (device such as
  // "--vdev=net_af_packet0,iface=veth1" or "-a 0000:3b:00.0", lcores,
  // memory). The transport adds --no-huge, -m, --no-pci, --file-prefix and
  // --lcores when absent; --in-memory is refused.
  std::string eal_args;
  // This node's MAC ("aa:bb:cc:dd:ee:ff"); empty: the port's own address.
  std::string mac;
  // true: spin (ReadinessFd is always readable: for a dedicated core).
  // false: back off when idle (for machines where nodes share cores).
  bool busy_poll = false;
  // The IP MTU of frames between nodes (the cluster file's mtu_bytes). 0:
  // the largest the port reports (jumbo when it allows, capped at 9000).
  // Nonzero: exactly this, also above what the driver reports when the
  // port is kernel-backed (af_packet under-reports); the transport refuses
  // to start if the port, its kernel interface or its mbufs cannot carry
  // it. Else in [kLinkMtuBytesMin, kLinkMtuBytesMax].
  size_t mtu_bytes = 0;
  // DPDK idle back-off (busy_poll = false): after a Poll that found work,
  // ReadinessFd stays readable for this long, so a frame answering ours is
  // picked up without a sleep and a wake-up. 0: sleep at once. At most
  // kIdleSpinUsMax.
  int64_t idle_spin_us = 0;
  // DPDK: how long the ack of a data frame may wait for data to the same
  // peer to ride on (transport/dpdk/frame_engine.h, EngineConfig). At most
  // kAckDelayUsMax; the DPDK retransmission timeout's floor grows by it.
  int64_t ack_delay_us = 2000;
};

inline constexpr int64_t kIdleSpinUsMax = 10000;
inline constexpr int64_t kAckDelayUsMax = 5000;

// Checks what every implementation relies on: 0 < message_bytes_max <=
// kMessageBytesMax, send_queue_bytes_max > 0, 0 < back-off min <= max,
// mtu_bytes 0 or in [kLinkMtuBytesMin, kLinkMtuBytesMax], idle_spin_us in
// [0, kIdleSpinUsMax], ack_delay_us in [0, kAckDelayUsMax], and
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
  // unknown kind); each one also closes its connection. DPDK: every frame
  // addressed to this node's port that was refused (the reasons below).
  uint64_t frames_rejected = 0;

  // Datagram transports (DPDK) only; TCP leaves them 0. A frame is one
  // Ethernet frame; bytes_sent/bytes_received then count whole frames.
  uint64_t frames_sent = 0;      // Taken by the NIC: data, acks, resends.
  uint64_t frames_received = 0;  // Delivered by the NIC, ours or not.
  // Not addressed to this transport (another MAC, EtherType, protocol or
  // UDP port): ARP, IPv6 neighbour discovery, ... Normal, not an error.
  uint64_t frames_ignored = 0;
  uint64_t frames_bad_checksum = 0;  // Also in frames_rejected.
  // Another cluster id, an unknown source or a wrong destination node, a
  // source MAC that is not the peer's. Also in frames_rejected.
  uint64_t frames_foreign = 0;
  uint64_t frames_out_of_order = 0;  // Data after a lost frame: dropped.
  uint64_t frames_duplicate = 0;     // Data frames received again.
  uint64_t retransmissions = 0;      // Data frames sent again.
  uint64_t retransmit_timeouts = 0;  // Retransmission timer expiries.
  uint64_t reassembly_failures = 0;  // Partly received messages discarded.
  uint64_t tx_deferred = 0;  // Frames the NIC did not take at once (retried).
  // Frames the NIC or its ring dropped, as the port reports them (imissed,
  // rx_nombuf). af_packet reports none: on veth, loss shows up as
  // frames_out_of_order and retransmissions instead.
  uint64_t rx_missed = 0;
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
