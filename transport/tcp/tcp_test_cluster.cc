#include "transport/tcp/tcp_test_cluster.h"

#include "absl/base/internal/raw_logging.h"
#include "transport/test_util.h"

namespace blizzard::transport::testing {

TcpTestCluster::TcpTestCluster(int n, const TransportOptions& base,
                               const TcpOptions& tcp_options)
    : base_(base), tcp_options_(tcp_options) {
  for (NodeId id = 1; id <= static_cast<NodeId>(n); ++id) ports_[id] = 0;
  for (NodeId id = 1; id <= static_cast<NodeId>(n); ++id) {
    auto transport = TcpTransport::Create(OptionsFor(id, 0), tcp_options_);
    ABSL_RAW_CHECK(transport.ok(), "creating a test transport failed");
    ports_[id] = (*transport)->ListenPort();
    nodes_[id] = std::move(*transport);
  }
  for (auto& [id, transport] : nodes_) {
    for (auto& [peer, port] : ports_) {
      if (peer == id) continue;
      ABSL_RAW_CHECK(transport->SetPeerAddress(peer, "127.0.0.1", port).ok(),
                     "SetPeerAddress failed");
    }
  }
}

TransportOptions TcpTestCluster::OptionsFor(NodeId id,
                                            uint16_t listen_port) const {
  TransportOptions options = base_;
  options.self = id;
  options.listen_host = "127.0.0.1";
  options.listen_port = listen_port;
  options.peers.clear();
  for (const auto& [peer, port] : ports_) {
    if (peer != id) options.peers.push_back({peer, "127.0.0.1", port});
  }
  return options;
}

std::vector<NodeId> TcpTestCluster::ids() const {
  std::vector<NodeId> ids;
  for (const auto& [id, port] : ports_) ids.push_back(id);
  return ids;
}

void TcpTestCluster::Stop(NodeId id) { nodes_.at(id).reset(); }

absl::Status TcpTestCluster::Start(NodeId id) {
  ABSL_RAW_CHECK(nodes_.at(id) == nullptr, "starting a running node");
  auto transport = TcpTransport::Create(OptionsFor(id, ports_.at(id)),
                                        tcp_options_);
  if (!transport.ok()) return transport.status();
  nodes_[id] = std::move(*transport);
  return absl::OkStatus();
}

void TcpTestCluster::Step(const ClusterHandler& handler, int wait_ms) {
  std::vector<int> fds;
  for (auto& [id, transport] : nodes_) {
    if (transport) fds.push_back(transport->ReadinessFd());
  }
  WaitReadable(fds, wait_ms);
  for (auto& [id, transport] : nodes_) {
    if (!transport) continue;
    const NodeId to = id;
    absl::Status s = transport->Poll(
        [&](NodeId from, absl::Span<const uint8_t> payload) {
          handler(to, from, payload);
        });
    ABSL_RAW_CHECK(s.ok(), "Poll failed");
  }
}

bool TcpTestCluster::AllConnected() const {
  for (const auto& [id, transport] : nodes_) {
    if (!transport) continue;
    for (const auto& [peer, other] : nodes_) {
      if (peer != id && other && !transport->OutboundConnected(peer)) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace blizzard::transport::testing
