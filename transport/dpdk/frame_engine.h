// The DPDK transport's protocol without DPDK: turns messages into Ethernet
// frames and frames back into messages, for every peer of one node. It owns
// a SendStream and a ReceiveStream per peer, the addressing (MAC, IPv4, UDP
// port) and the checks of incoming frames (cluster, node ids, source MAC).
//
// It does no I/O and reads no clock: the caller feeds it received frames
// (OnFrame), asks it for frames to transmit (NextFrame) and passes the time.
// DpdkTransport drives it with rte_eth_rx_burst/tx_burst and mbufs; tests
// drive it with byte vectors over a simulated lossy wire, so the whole
// protocol is tested deterministically without EAL.
#ifndef BLIZZARD_TRANSPORT_DPDK_FRAME_ENGINE_H_
#define BLIZZARD_TRANSPORT_DPDK_FRAME_ENGINE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "transport/dpdk/frame_format.h"
#include "transport/dpdk/receive_stream.h"
#include "transport/dpdk/send_stream.h"
#include "transport/transport.h"

namespace blizzard::transport::dpdk {

// Knobs below the Transport interface; the defaults suit veth and NICs.
struct EngineConfig {
  // This node's MAC when TransportOptions::mac is empty (the port's own).
  MacAddress port_mac{};
  size_t mtu_bytes = 1500;  // IP MTU the link carries (see DpdkTransport).
  // Unacknowledged frames per peer. Bounded so that all peers together
  // cannot overrun a receiver's rx ring (af_packet's default is 512 frames).
  uint32_t window_frames = 128;
  int64_t rto_us_min = 2000;
  int64_t rto_us_max = 200000;
  int64_t reassembly_timeout_us = 5000000;
  // Delayed acks: a data frame's ack waits up to this for a data frame to
  // the same peer to ride on, instead of costing a frame of its own (and,
  // with the idle back-off, a wake-up of the peer). A duplicate, a gap (NACK)
  // or window_frames / 4 frames unacknowledged are acked at once. 0: every
  // ack at once. At most kAckDelayUsMax. The peers use the same delay, so
  // the retransmission timeout's floor is rto_us_min + ack_delay_us: a
  // delayed ack never makes the sender time out.
  int64_t ack_delay_us = 0;
  // This instance's epoch: nonzero and different from any earlier instance
  // of the same node (DpdkTransport uses the realtime clock in ns).
  uint64_t epoch = 1;
};

class FrameEngine {
 public:
  // Validates the options (ValidateTransportOptions, plus: every peer has a
  // MAC, every host is a dotted quad, MACs are unique, the MTU is in range)
  // and reserves each peer's buffers. Ports 0 mean kDefaultUdpPort.
  static absl::StatusOr<std::unique_ptr<FrameEngine>> Create(
      const TransportOptions& options, const EngineConfig& config);

  // As Transport::Send: InvalidArgument (unknown peer, too large) or
  // ResourceExhausted (queue full; counted in messages_dropped).
  absl::Status Send(NodeId to, absl::Span<const uint8_t> payload);

  // Takes one received frame (any frame the port delivered). Calls `handler`
  // for each message it completes; the handler may call Send.
  void OnFrame(absl::Span<const uint8_t> frame, int64_t now_us,
               const MessageHandler& handler);

  // Writes the next frame due into `frame` (at least frame_bytes_max()
  // bytes) and returns its length, or 0 if nothing is due at `now_us`.
  // Pure acks go first, then data round-robin over peers; data frames carry
  // the ack for their peer.
  size_t NextFrame(int64_t now_us, absl::Span<uint8_t> frame);
  // True if NextFrame would return a frame.
  bool FrameDue(int64_t now_us) const;

  // Discards reassemblies that timed out. Cheap; call once per poll.
  void Expire(int64_t now_us);
  // The earliest time something becomes due without new input: a
  // retransmission timeout or a reassembly timeout. kNeverUs if none.
  int64_t DeadlineUs() const;

  size_t frame_bytes_max() const { return kEthernetHeaderBytes + mtu_bytes_; }
  size_t mtu_bytes() const { return mtu_bytes_; }
  const MacAddress& self_mac() const { return self_.src_mac; }
  uint16_t udp_port() const { return self_.src_port; }
  uint64_t epoch() const { return epoch_; }

  // Counters; frames_sent/bytes_sent/tx_deferred/rx_missed are the
  // caller's (it knows what the NIC took), everything else is filled here.
  TransportStats stats() const;
  // Introspection for tests, tools and INFO.
  size_t QueuedBytes(NodeId peer) const;
  bool Idle(NodeId peer) const;  // All sent messages acknowledged.
  const SendStream* sender(NodeId peer) const;
  const ReceiveStream* receiver(NodeId peer) const;

 private:
  struct Peer {
    NodeId id;
    Addressing addressing;  // From us to this peer.
    SendStream send;
    ReceiveStream receive;
    // Delayed ack (EngineConfig::ack_delay_us): since when one is due, how
    // many frames it covers, and whether it must go at once.
    int64_t ack_due_since_us = kNeverUs;
    uint32_t frames_unacked = 0;
    bool ack_now = false;
  };

  FrameEngine(const TransportOptions& options, const EngineConfig& config,
              const Addressing& self);
  Peer* FindPeer(NodeId id);
  const Peer* FindPeer(NodeId id) const;
  bool AckOnly(const Peer& peer, int64_t now_us) const;
  bool AckReady(const Peer& peer, int64_t now_us) const;
  void FillAck(Peer& peer, FrameHeader* header);
  size_t BuildAck(Peer& peer, absl::Span<uint8_t> frame);
  size_t BuildData(Peer& peer, int64_t now_us, absl::Span<uint8_t> frame);
  void Reject(uint64_t* reason);

  uint64_t cluster_id_;
  NodeId self_id_;
  Addressing self_;  // src_* fields: ours; dst_* unused.
  size_t mtu_bytes_;
  int64_t ack_delay_us_;
  uint32_t ack_frames_max_;
  uint64_t epoch_;
  std::vector<Peer> peers_;
  absl::flat_hash_map<NodeId, size_t> peer_index_;
  size_t round_robin_ = 0;
  TransportStats stats_;
};

}  // namespace blizzard::transport::dpdk

#endif  // BLIZZARD_TRANSPORT_DPDK_FRAME_ENGINE_H_
