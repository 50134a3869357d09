#include "transport/dpdk/frame_engine.h"

#include <algorithm>
#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"

namespace blizzard::transport::dpdk {
namespace {

uint16_t PortOrDefault(uint16_t port) {
  return port == 0 ? kDefaultUdpPort : port;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FrameEngine>> FrameEngine::Create(
    const TransportOptions& options, const EngineConfig& config) {
  if (absl::Status s = ValidateTransportOptions(options); !s.ok()) return s;
  if (config.mtu_bytes < kMtuBytesMin || config.mtu_bytes > kMtuBytesMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "MTU %d outside [%d, %d]", config.mtu_bytes, kMtuBytesMin,
        kMtuBytesMax));
  }
  if (config.window_frames == 0 || config.window_frames > (1u << 16)) {
    return absl::InvalidArgumentError("window_frames must be in [1, 65536]");
  }
  if (config.rto_us_min <= 0 || config.rto_us_max < config.rto_us_min ||
      config.reassembly_timeout_us <= 0) {
    return absl::InvalidArgumentError(
        "need 0 < rto_us_min <= rto_us_max and reassembly_timeout_us > 0");
  }
  if (config.epoch == 0) {
    return absl::InvalidArgumentError("epoch must be nonzero");
  }
  if (config.ack_delay_us < 0 || config.ack_delay_us > kAckDelayUsMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ack_delay_us must be in [0, %d]", kAckDelayUsMax));
  }
  Addressing self;
  if (options.mac.empty()) {
    // The port's own address must still be a station address.
    absl::StatusOr<MacAddress> mac = ParseMac(FormatMac(config.port_mac));
    if (!mac.ok()) return mac.status();
    self.src_mac = *mac;
  } else {
    absl::StatusOr<MacAddress> mac = ParseMac(options.mac);
    if (!mac.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("this node's mac: %s", mac.status().message()));
    }
    self.src_mac = *mac;
  }
  absl::StatusOr<uint32_t> ip = ParseIpv4(options.listen_host);
  if (!ip.ok()) return ip.status();
  self.src_ip = *ip;
  self.src_port = PortOrDefault(options.listen_port);

  auto engine =
      std::unique_ptr<FrameEngine>(new FrameEngine(options, config, self));
  absl::flat_hash_set<MacAddress> macs = {self.src_mac};
  for (const PeerAddress& address : options.peers) {
    if (address.mac.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "peer %d has no MAC: the DPDK transport addresses peers by MAC "
          "(set mac in the cluster file)",
          address.id));
    }
    absl::StatusOr<MacAddress> mac = ParseMac(address.mac);
    if (!mac.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "peer %d: %s", address.id, mac.status().message()));
    }
    if (!macs.insert(*mac).second) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "peer %d: MAC %s is used twice", address.id, address.mac));
    }
    absl::StatusOr<uint32_t> peer_ip = ParseIpv4(address.host);
    if (!peer_ip.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "peer %d: %s", address.id, peer_ip.status().message()));
    }
    Addressing a = self;
    a.dst_mac = *mac;
    a.dst_ip = *peer_ip;
    a.dst_port = PortOrDefault(address.port);
    SendStreamOptions send;
    send.queue_bytes_max = options.send_queue_bytes_max;
    send.message_bytes_max = options.message_bytes_max;
    send.payload_bytes_max = PayloadBytesMax(config.mtu_bytes);
    send.window_frames = config.window_frames;
    // The peer may hold its ack for ack_delay_us (the same cluster-wide
    // setting): a timeout shorter than that would fire while the ack waits.
    send.rto_us_min = config.rto_us_min + config.ack_delay_us;
    send.rto_us_max = std::max(config.rto_us_max, send.rto_us_min);
    engine->peer_index_[address.id] = engine->peers_.size();
    engine->peers_.push_back(Peer{
        address.id, a, SendStream(send),
        ReceiveStream(options.message_bytes_max, config.reassembly_timeout_us)});
  }
  return engine;
}

FrameEngine::FrameEngine(const TransportOptions& options,
                         const EngineConfig& config, const Addressing& self)
    : cluster_id_(options.cluster_id),
      self_id_(options.self),
      self_(self),
      mtu_bytes_(config.mtu_bytes),
      ack_delay_us_(config.ack_delay_us),
      ack_frames_max_(std::max<uint32_t>(1, config.window_frames / 4)),
      epoch_(config.epoch) {
  peers_.reserve(options.peers.size());
}

FrameEngine::Peer* FrameEngine::FindPeer(NodeId id) {
  auto it = peer_index_.find(id);
  return it == peer_index_.end() ? nullptr : &peers_[it->second];
}

const FrameEngine::Peer* FrameEngine::FindPeer(NodeId id) const {
  auto it = peer_index_.find(id);
  return it == peer_index_.end() ? nullptr : &peers_[it->second];
}

absl::Status FrameEngine::Send(NodeId to, absl::Span<const uint8_t> payload) {
  Peer* peer = FindPeer(to);
  if (peer == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat("unknown peer %d", to));
  }
  absl::Status s = peer->send.Enqueue(payload);
  if (absl::IsResourceExhausted(s)) ++stats_.messages_dropped;
  return s;
}

void FrameEngine::Reject(uint64_t* reason) {
  ++stats_.frames_rejected;
  if (reason != nullptr) ++*reason;
}

void FrameEngine::OnFrame(absl::Span<const uint8_t> frame, int64_t now_us,
                          const MessageHandler& handler) {
  ++stats_.frames_received;
  stats_.bytes_received += frame.size();
  DecodedFrame d;
  switch (DecodeFrame(frame, self_.src_mac, self_.src_port, &d)) {
    case DecodeResult::kOk:
      break;
    case DecodeResult::kNotOurs:
      ++stats_.frames_ignored;
      return;
    case DecodeResult::kBadChecksum:
      return Reject(&stats_.frames_bad_checksum);
    case DecodeResult::kMalformed:
    case DecodeResult::kBadVersion:
      return Reject(nullptr);
  }
  const FrameHeader& h = d.header;
  Peer* peer = FindPeer(h.src_node);
  if (h.cluster_id != cluster_id_ || h.dst_node != self_id_ ||
      peer == nullptr || d.addressing.src_mac != peer->addressing.dst_mac) {
    return Reject(&stats_.frames_foreign);
  }
  // Acks about an earlier instance of us (ack_epoch differs) are stale.
  if ((h.flags & kFlagAck) && h.ack_epoch == epoch_ &&
      !peer->send.OnAck(h.ack_seq, h.flags & kFlagNack, now_us)) {
    return Reject(nullptr);  // Acknowledges frames we never sent.
  }
  if (!IsData(h.kind)) return;
  const uint64_t epoch_before = peer->receive.epoch();
  const NodeId from = peer->id;
  ReceiveStream::Outcome outcome = peer->receive.OnData(
      h, d.payload, now_us, [&](absl::Span<const uint8_t> message) {
        ++stats_.messages_received;
        handler(from, message);
      });
  if (peer->receive.epoch() != epoch_before) {
    ++stats_.connects;
    if (epoch_before != 0) ++stats_.disconnects;  // It restarted.
  }
  if (peer->receive.ack_due()) {
    if (peer->ack_due_since_us == kNeverUs) peer->ack_due_since_us = now_us;
    ++peer->frames_unacked;
    // The sender is retransmitting or saw a gap, or its window is filling:
    // it needs this ack now.
    if (outcome != ReceiveStream::Outcome::kAccepted ||
        peer->receive.nack_due() || peer->frames_unacked >= ack_frames_max_) {
      peer->ack_now = true;
    }
  }
  switch (outcome) {
    case ReceiveStream::Outcome::kAccepted:
      break;
    case ReceiveStream::Outcome::kDuplicate:
      ++stats_.frames_duplicate;
      break;
    case ReceiveStream::Outcome::kOutOfOrder:
      ++stats_.frames_out_of_order;
      break;
    case ReceiveStream::Outcome::kRejected:
      Reject(nullptr);
      break;
  }
}

bool FrameEngine::AckReady(const Peer& peer, int64_t now_us) const {
  return peer.receive.ack_due() &&
         (peer.ack_now || now_us - peer.ack_due_since_us >= ack_delay_us_);
}

bool FrameEngine::AckOnly(const Peer& peer, int64_t now_us) const {
  return AckReady(peer, now_us) && !peer.send.Ready(now_us);
}

bool FrameEngine::FrameDue(int64_t now_us) const {
  for (const Peer& peer : peers_) {
    if (AckReady(peer, now_us) || peer.send.Ready(now_us)) return true;
  }
  return false;
}

void FrameEngine::FillAck(Peer& peer, FrameHeader* h) {
  h->cluster_id = cluster_id_;
  h->src_node = self_id_;
  h->dst_node = peer.id;
  h->src_epoch = epoch_;
  if (peer.receive.epoch() != 0) {
    h->flags = kFlagAck | (peer.receive.nack_due() ? kFlagNack : 0);
    h->ack_epoch = peer.receive.epoch();
    h->ack_seq = peer.receive.expected_seq();
  }
  peer.receive.AckSent();
  peer.ack_due_since_us = kNeverUs;
  peer.frames_unacked = 0;
  peer.ack_now = false;
}

size_t FrameEngine::BuildAck(Peer& peer, absl::Span<uint8_t> frame) {
  FrameHeader h;
  h.kind = kKindAck;
  FillAck(peer, &h);
  return FinishFrame(peer.addressing, h, frame);
}

size_t FrameEngine::BuildData(Peer& peer, int64_t now_us,
                              absl::Span<uint8_t> frame) {
  OutgoingFrame out;
  const bool built = peer.send.Next(
      now_us,
      frame.subspan(kFrameHeadersBytes, PayloadBytesMax(mtu_bytes_)), &out);
  ABSL_RAW_CHECK(built, "a ready stream produced no frame");
  FillAck(peer, &out.header);
  stats_.messages_sent += out.messages_completed;
  return FinishFrame(peer.addressing, out.header, frame);
}

size_t FrameEngine::NextFrame(int64_t now_us, absl::Span<uint8_t> frame) {
  ABSL_RAW_CHECK(frame.size() >= frame_bytes_max(), "frame buffer too small");
  // Acks first: they unblock the peers' windows, and cost one small frame.
  for (Peer& peer : peers_) {
    if (AckOnly(peer, now_us)) return BuildAck(peer, frame);
  }
  for (size_t i = 0; i < peers_.size(); ++i) {
    Peer& peer = peers_[(round_robin_ + i) % peers_.size()];
    if (peer.send.Ready(now_us)) {
      round_robin_ = (round_robin_ + i + 1) % peers_.size();
      return BuildData(peer, now_us, frame);
    }
  }
  return 0;
}

void FrameEngine::Expire(int64_t now_us) {
  for (Peer& peer : peers_) peer.receive.Expire(now_us);
}

int64_t FrameEngine::DeadlineUs() const {
  int64_t deadline = kNeverUs;
  for (const Peer& peer : peers_) {
    deadline = std::min({deadline, peer.send.DeadlineUs(),
                         peer.receive.DeadlineUs()});
    if (peer.receive.ack_due()) {
      deadline = std::min(deadline, peer.ack_now
                                        ? peer.ack_due_since_us
                                        : peer.ack_due_since_us + ack_delay_us_);
    }
  }
  return deadline;
}

TransportStats FrameEngine::stats() const {
  TransportStats stats = stats_;
  for (const Peer& peer : peers_) {
    stats.retransmissions += peer.send.stats().retransmissions;
    stats.retransmit_timeouts += peer.send.stats().timeouts;
    const ReceiveStreamStats& r = peer.receive.stats();
    stats.reassembly_failures += r.reassembly_failures;
    stats.messages_dropped += r.reassembly_failures;
  }
  return stats;
}

size_t FrameEngine::QueuedBytes(NodeId id) const {
  const Peer* peer = FindPeer(id);
  return peer == nullptr ? 0 : peer->send.queued_bytes();
}

bool FrameEngine::Idle(NodeId id) const {
  const Peer* peer = FindPeer(id);
  return peer == nullptr || peer->send.idle();
}

const SendStream* FrameEngine::sender(NodeId id) const {
  const Peer* peer = FindPeer(id);
  return peer == nullptr ? nullptr : &peer->send;
}

const ReceiveStream* FrameEngine::receiver(NodeId id) const {
  const Peer* peer = FindPeer(id);
  return peer == nullptr ? nullptr : &peer->receive;
}

}  // namespace blizzard::transport::dpdk
