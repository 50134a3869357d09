#include "node/transport_setup.h"

#include "absl/strings/str_cat.h"

namespace blizzard::node {

transport::TransportOptions TransportOptionsFor(const ClusterConfig& cluster,
                                               const NodeConfig& self) {
  transport::TransportOptions t;
  t.cluster_id = cluster.cluster_id;
  t.self = self.id;
  t.listen_host = self.host;
  t.listen_port = self.peer_port;
  // Read only by the DPDK transport (the others ignore them): the port's
  // device and EAL set-up, this node's and every peer's MAC (frames are
  // addressed by MAC, there is no ARP), and whether to spin or back off.
  t.eal_args = self.eal_args;
  t.mac = self.mac;
  t.busy_poll = cluster.busy_poll;
  t.mtu_bytes = cluster.mtu_bytes;
  t.idle_spin_us = cluster.idle_spin_us;
  t.ack_delay_us = cluster.ack_delay_us;
  for (const NodeConfig& n : cluster.nodes) {
    if (n.id == self.id) continue;
    t.peers.push_back(transport::PeerAddress{n.id, n.host, n.peer_port, n.mac});
  }
  return t;
}

void AppendTransportInfo(const transport::TransportStats& ts, std::string* out) {
  // Every counter of TransportStats, whichever transport is linked (the
  // datagram ones stay 0 on TCP, the connection ones on DPDK), so tools
  // read one schema. Messages/bytes are in # Stats above as peer_*.
  absl::StrAppend(out, "\r\n# Transport\r\n",
                  "transport_connects:", ts.connects, "\r\n",
                  "transport_disconnects:", ts.disconnects, "\r\n",
                  "transport_handshakes_rejected:", ts.handshakes_rejected, "\r\n",
                  "transport_frames_sent:", ts.frames_sent, "\r\n",
                  "transport_frames_received:", ts.frames_received, "\r\n",
                  "transport_frames_ignored:", ts.frames_ignored, "\r\n",
                  "transport_frames_rejected:", ts.frames_rejected, "\r\n",
                  "transport_frames_bad_checksum:", ts.frames_bad_checksum, "\r\n",
                  "transport_frames_foreign:", ts.frames_foreign, "\r\n",
                  "transport_frames_out_of_order:", ts.frames_out_of_order, "\r\n",
                  "transport_frames_duplicate:", ts.frames_duplicate, "\r\n");
  absl::StrAppend(out, "transport_retransmissions:", ts.retransmissions, "\r\n",
                  "transport_retransmit_timeouts:", ts.retransmit_timeouts, "\r\n",
                  "transport_reassembly_failures:", ts.reassembly_failures, "\r\n",
                  "transport_tx_deferred:", ts.tx_deferred, "\r\n",
                  "transport_rx_missed:", ts.rx_missed, "\r\n");
}

}  // namespace blizzard::node
