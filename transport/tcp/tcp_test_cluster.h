// A few TcpTransports on 127.0.0.1 wired to each other, for tests: nodes
// listen on port 0 and learn each other's ports through SetPeerAddress.
#ifndef BLIZZARD_TRANSPORT_TCP_TCP_TEST_CLUSTER_H_
#define BLIZZARD_TRANSPORT_TCP_TCP_TEST_CLUSTER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "transport/tcp/tcp_transport.h"
#include "transport/transport.h"

namespace blizzard::transport::testing {

using ClusterHandler =
    std::function<void(NodeId to, NodeId from, absl::Span<const uint8_t>)>;

class TcpTestCluster {
 public:
  // Nodes 1..n. `base` supplies everything but self, peers and the port.
  TcpTestCluster(int n, const TransportOptions& base,
                 const TcpOptions& tcp_options = TcpOptions());

  TcpTransport& node(NodeId id) { return *nodes_.at(id); }
  bool running(NodeId id) const { return nodes_.at(id) != nullptr; }
  uint16_t port(NodeId id) const { return ports_.at(id); }
  std::vector<NodeId> ids() const;

  // Destroys a node (its sockets close as in a crash of the process).
  void Stop(NodeId id);
  // Recreates a stopped node on its old port.
  absl::Status Start(NodeId id);

  // Waits until some node's ReadinessFd is readable (at most wait_ms), then
  // polls every running node once.
  void Step(const ClusterHandler& handler, int wait_ms = 5);
  // Every running node has an outbound connection to every running peer.
  bool AllConnected() const;

 private:
  TransportOptions OptionsFor(NodeId id, uint16_t listen_port) const;

  TransportOptions base_;
  TcpOptions tcp_options_;
  std::map<NodeId, std::unique_ptr<TcpTransport>> nodes_;
  std::map<NodeId, uint16_t> ports_;
};

}  // namespace blizzard::transport::testing

#endif  // BLIZZARD_TRANSPORT_TCP_TCP_TEST_CLUSTER_H_
