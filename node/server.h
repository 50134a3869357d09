// The node: one single-threaded, run-to-completion event loop that drives
// consensus (Raft), the persistent log, the transport, the replication mode
// and the client front end (RESP over TCP).
//
// One loop iteration: wait for events (client sockets, the transport, the
// tick timer); read and parse client requests; batch every write that
// arrived into ONE Raft entry (as Cyclone did); gather every read into one
// ReadIndex round; then drain Raft's Ready: persist entries + hard state to
// pmemlog (one fence per batch), send messages, apply committed entries to
// the structures (one transaction per entry), reply to clients in request
// order.
#ifndef BLIZZARD_NODE_SERVER_H_
#define BLIZZARD_NODE_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/config.h"

namespace blizzard::node {

struct ServerOptions {
  uint64_t self = 0;         // This node's id in the cluster file.
  uint64_t random_seed = 0;  // Election timeouts; 0: derived from the id.
  // Back-pressure: client requests accepted but not yet answered, over all
  // connections. Above it the node stops reading client sockets.
  size_t pending_requests_max = 200000;
  // A client that does not read its replies is disconnected past this.
  size_t client_output_bytes_max = 256u << 20;
  // Fairness: bytes read from one client per loop iteration.
  size_t client_read_bytes_per_turn = 256u << 10;
};

class Server {
 public:
  // Opens (or creates) the pools, recovers, binds the client and peer ports.
  static absl::StatusOr<std::unique_ptr<Server>> Create(
      const ClusterConfig& cluster, const ServerOptions& options);
  ~Server();

  // Runs the event loop until `stop` becomes true (checked at least every
  // tick) or a fatal error (a pool failure, a committed entry that does not
  // decode): then returns that error.
  absl::Status Run(const std::atomic<bool>& stop);

 private:
  class Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_SERVER_H_
