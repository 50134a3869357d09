#include "transport/transport.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"

namespace blizzard::transport {

absl::Status ValidateTransportOptions(const TransportOptions& options) {
  if (options.message_bytes_max == 0 ||
      options.message_bytes_max > kMessageBytesMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "message_bytes_max must be in [1, %d]", kMessageBytesMax));
  }
  if (options.send_queue_bytes_max == 0) {
    return absl::InvalidArgumentError("send_queue_bytes_max must be > 0");
  }
  if (options.reconnect_backoff_ms_min <= 0 ||
      options.reconnect_backoff_ms_max < options.reconnect_backoff_ms_min) {
    return absl::InvalidArgumentError(
        "reconnect back-off needs 0 < min <= max");
  }
  if (options.mtu_bytes != 0 && (options.mtu_bytes < kLinkMtuBytesMin ||
                                 options.mtu_bytes > kLinkMtuBytesMax)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("mtu_bytes %d outside [%d, %d] (0: the port's own)",
                        options.mtu_bytes, kLinkMtuBytesMin, kLinkMtuBytesMax));
  }
  if (options.idle_spin_us < 0 || options.idle_spin_us > kIdleSpinUsMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "idle_spin_us %d outside [0, %d]", options.idle_spin_us, kIdleSpinUsMax));
  }
  if (options.ack_delay_us < 0 || options.ack_delay_us > kAckDelayUsMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ack_delay_us %d outside [0, %d]", options.ack_delay_us, kAckDelayUsMax));
  }
  absl::flat_hash_set<NodeId> ids;
  for (const PeerAddress& peer : options.peers) {
    if (peer.id == options.self) {
      return absl::InvalidArgumentError(
          absl::StrFormat("peer list contains self (%d)", peer.id));
    }
    if (!ids.insert(peer.id).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("peer %d listed twice", peer.id));
    }
  }
  return absl::OkStatus();
}

}  // namespace blizzard::transport
