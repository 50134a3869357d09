// A simulated network in one process, deterministic from one seed.
//
// The SimNetwork owns a clock (integer microseconds, advanced only by the
// caller) and the messages in flight. Endpoints created from it implement
// Transport: Send copies the message into the network, which decides its
// fate then and there from the seed (drop, duplicate, delay, reorder); Poll
// on the destination delivers every message whose delivery time has come, in
// (delivery time, send order) order. Same seed + same sequence of calls =>
// same deliveries in the same order, byte for byte.
//
// Faults (SimOptions, changeable at any time, plus explicit partitions):
//   - drop_probability: a message is lost.
//   - duplicate_probability: a second copy is delivered with its own delay.
//   - delay_us_min/max: uniform per-message latency. Links are FIFO (like
//     TCP) unless a message is picked for reordering ...
//   - reorder_probability: ... which adds uniform [0, reorder_delay_us_max]
//     extra delay and lets it overtake / be overtaken.
//   - Cut/Heal/Partition/Isolate: directed links that lose everything,
//     asymmetric allowed. Checked at send AND at delivery, so a cut also
//     loses what was in flight on that link.
//   - A node without a live endpoint (crashed, not restarted yet) loses
//     everything sent to it; destroying an endpoint loses its in-flight
//     inbound messages.
// Messages between endpoints of different cluster ids are dropped at the
// receiver (counted in its handshakes_rejected).
//
// Link-time factory: this library does NOT define CreateTransport /
// TransportName. Endpoints belong to a SimNetwork and are created from it, and
// a simulation links the node code with this library alone, so a second
// definition would only clash with //transport:tcp in binaries linking both.
//
// Threading: one thread drives the network and all its endpoints.
#ifndef BLIZZARD_TRANSPORT_SIM_SIM_NETWORK_H_
#define BLIZZARD_TRANSPORT_SIM_SIM_NETWORK_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "transport/sim/splitmix64.h"
#include "transport/transport.h"

namespace blizzard::transport {

struct SimOptions {
  double drop_probability = 0.0;
  double duplicate_probability = 0.0;
  double reorder_probability = 0.0;
  int64_t reorder_delay_us_max = 0;
  int64_t delay_us_min = 100;
  int64_t delay_us_max = 100;
  // Messages in flight in the whole network; Send beyond is
  // ResourceExhausted (a runaway test fails instead of eating memory).
  size_t in_flight_messages_max = 1u << 20;
};

// InvalidArgument unless probabilities are in [0, 1], delays >= 0,
// min <= max, and in_flight_messages_max > 0.
absl::Status ValidateSimOptions(const SimOptions& options);

struct SimStats {
  uint64_t sent = 0;                 // Accepted by Send.
  uint64_t delivered = 0;            // Handed to a handler.
  uint64_t dropped_random = 0;       // drop_probability.
  uint64_t dropped_partition = 0;    // Cut link, at send or delivery.
  uint64_t dropped_node_down = 0;    // No live endpoint at the destination.
  uint64_t dropped_cluster = 0;      // Cluster id mismatch.
  uint64_t duplicated = 0;
  uint64_t reordered = 0;
};

class SimEndpoint;

class SimNetwork {
 public:
  // Asserts ValidateSimOptions (options are the test author's, not input).
  explicit SimNetwork(uint64_t seed, const SimOptions& options = SimOptions());
  ~SimNetwork();  // All endpoints must have been destroyed first.
  SimNetwork(const SimNetwork&) = delete;
  SimNetwork& operator=(const SimNetwork&) = delete;

  // A new endpoint for options.self, reachable from now on. Uses self, peers
  // (only ids; host and port are ignored), cluster_id, message_bytes_max and
  // send_queue_bytes_max (bytes in flight on each outgoing link; as in TCP an
  // empty link always takes one message). FailedPrecondition if an endpoint
  // for that id is alive; InvalidArgument for bad options. The endpoint
  // must not outlive the network.
  absl::StatusOr<std::unique_ptr<Transport>> CreateEndpoint(
      const TransportOptions& options);
  // Shorthand: default options, this id and these peers.
  absl::StatusOr<std::unique_ptr<Transport>> CreateEndpoint(
      NodeId self, absl::Span<const NodeId> peers, uint64_t cluster_id = 0);

  // The clock. It only moves forward.
  int64_t now_us() const { return now_us_; }
  void AdvanceTo(int64_t time_us);
  void Advance(int64_t delta_us) { AdvanceTo(now_us_ + delta_us); }
  // Earliest delivery time among messages to live endpoints, if any: a
  // simulator can jump the clock straight there.
  std::optional<int64_t> NextDeliveryUs() const;

  const SimOptions& options() const { return options_; }
  absl::Status set_options(const SimOptions& options);

  // Partitions. Links are directed: Cut(1, 2) loses 1 -> 2 but not 2 -> 1.
  void Cut(NodeId from, NodeId to);
  void Heal(NodeId from, NodeId to);
  // Cuts every link between a node of `a` and a node of `b`, both ways.
  void Partition(absl::Span<const NodeId> a, absl::Span<const NodeId> b);
  // Cuts everything to and from `node` until Rejoin or HealAll.
  void Isolate(NodeId node);
  void Rejoin(NodeId node);
  void HealAll();
  bool LinkUp(NodeId from, NodeId to) const;

  size_t InFlight() const { return in_flight_count_; }
  const SimStats& stats() const { return stats_; }
  uint64_t seed() const { return seed_; }

 private:
  friend class SimEndpoint;

  struct Message {
    int64_t deliver_at_us = 0;
    uint64_t sequence = 0;  // Global send order: the deterministic tie-break.
    NodeId from = 0;
    uint64_t cluster_id = 0;
    bool counts_against_link = false;  // False for a duplicate's copy.
    std::vector<uint8_t> payload;
  };
  struct Later {
    bool operator()(const Message& a, const Message& b) const {
      return a.deliver_at_us != b.deliver_at_us
                 ? a.deliver_at_us > b.deliver_at_us
                 : a.sequence > b.sequence;
    }
  };
  // A min-heap on (deliver_at_us, sequence) via std::push_heap/pop_heap.
  using Inbox = std::vector<Message>;
  using Link = std::pair<NodeId, NodeId>;

  absl::Status Send(SimEndpoint& from, NodeId to,
                    absl::Span<const uint8_t> payload);
  void Poll(SimEndpoint& to, const MessageHandler& handler);
  void Unregister(SimEndpoint& endpoint);
  void Enqueue(NodeId to, Message message);

  uint64_t seed_;
  SplitMix64 random_;
  SimOptions options_;
  int64_t now_us_ = 0;
  uint64_t sequence_next_ = 0;
  size_t in_flight_count_ = 0;
  // Ordered containers only: iteration order must not depend on hashing.
  std::map<NodeId, SimEndpoint*> endpoints_;
  std::map<NodeId, Inbox> inboxes_;
  std::set<Link> cut_;
  std::set<NodeId> isolated_;
  std::map<Link, int64_t> link_last_delivery_us_;  // FIFO floor per link.
  std::map<Link, size_t> link_bytes_in_flight_;
  SimStats stats_;
};

}  // namespace blizzard::transport

#endif  // BLIZZARD_TRANSPORT_SIM_SIM_NETWORK_H_
