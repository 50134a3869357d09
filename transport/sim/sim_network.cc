#include "transport/sim/sim_network.h"

#include <algorithm>
#include <string>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"

namespace blizzard::transport {

// An endpoint is a thin handle: all state that decides delivery lives in the
// network, so one PRNG orders everything.
class SimEndpoint final : public Transport {
 public:
  SimEndpoint(SimNetwork* network, const TransportOptions& options)
      : network_(network),
        self_(options.self),
        cluster_id_(options.cluster_id),
        message_bytes_max_(options.message_bytes_max),
        send_queue_bytes_max_(options.send_queue_bytes_max) {
    for (const PeerAddress& peer : options.peers) peers_.insert(peer.id);
  }
  ~SimEndpoint() override { network_->Unregister(*this); }

  absl::Status Send(NodeId to, absl::Span<const uint8_t> payload) override {
    return network_->Send(*this, to, payload);
  }
  absl::Status Poll(const MessageHandler& handler) override {
    ABSL_RAW_CHECK(!in_poll_, "Poll re-entered from its own handler");
    in_poll_ = true;
    network_->Poll(*this, handler);
    in_poll_ = false;
    return absl::OkStatus();
  }
  int ReadinessFd() const override { return -1; }
  uint16_t ListenPort() const override { return 0; }
  TransportStats Stats() const override { return stats_; }

 private:
  friend class SimNetwork;

  SimNetwork* network_;
  NodeId self_;
  uint64_t cluster_id_;
  size_t message_bytes_max_;
  size_t send_queue_bytes_max_;
  std::set<NodeId> peers_;
  TransportStats stats_;
  bool in_poll_ = false;
};

absl::Status ValidateSimOptions(const SimOptions& options) {
  for (double p : {options.drop_probability, options.duplicate_probability,
                   options.reorder_probability}) {
    if (!(p >= 0.0 && p <= 1.0)) {
      return absl::InvalidArgumentError("probabilities must be in [0, 1]");
    }
  }
  if (options.delay_us_min < 0 || options.delay_us_max < options.delay_us_min ||
      options.reorder_delay_us_max < 0) {
    return absl::InvalidArgumentError(
        "delays must satisfy 0 <= delay_us_min <= delay_us_max and "
        "reorder_delay_us_max >= 0");
  }
  if (options.in_flight_messages_max == 0) {
    return absl::InvalidArgumentError("in_flight_messages_max must be > 0");
  }
  return absl::OkStatus();
}

SimNetwork::SimNetwork(uint64_t seed, const SimOptions& options)
    : seed_(seed), random_(seed), options_(options) {
  ABSL_RAW_CHECK(ValidateSimOptions(options).ok(), "invalid SimOptions");
}

SimNetwork::~SimNetwork() {
  ABSL_RAW_CHECK(endpoints_.empty(),
                 "SimNetwork destroyed before its endpoints");
}

absl::Status SimNetwork::set_options(const SimOptions& options) {
  if (absl::Status s = ValidateSimOptions(options); !s.ok()) return s;
  options_ = options;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Transport>> SimNetwork::CreateEndpoint(
    const TransportOptions& options) {
  if (absl::Status s = ValidateTransportOptions(options); !s.ok()) return s;
  if (endpoints_.contains(options.self)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("node %d already has a live endpoint", options.self));
  }
  auto endpoint = std::make_unique<SimEndpoint>(this, options);
  endpoints_[options.self] = endpoint.get();
  ABSL_RAW_CHECK(inboxes_[options.self].empty(),
                 "a node without an endpoint kept messages");
  return std::unique_ptr<Transport>(std::move(endpoint));
}

absl::StatusOr<std::unique_ptr<Transport>> SimNetwork::CreateEndpoint(
    NodeId self, absl::Span<const NodeId> peers, uint64_t cluster_id) {
  TransportOptions options;
  options.self = self;
  options.cluster_id = cluster_id;
  for (NodeId peer : peers) options.peers.push_back(PeerAddress{peer, "", 0});
  return CreateEndpoint(options);
}

void SimNetwork::AdvanceTo(int64_t time_us) {
  ABSL_RAW_CHECK(time_us >= now_us_, "the simulated clock only moves forward");
  now_us_ = time_us;
}

std::optional<int64_t> SimNetwork::NextDeliveryUs() const {
  std::optional<int64_t> next;
  for (const auto& [node, inbox] : inboxes_) {
    if (inbox.empty() || !endpoints_.contains(node)) continue;
    if (!next || inbox.front().deliver_at_us < *next) {
      next = inbox.front().deliver_at_us;
    }
  }
  return next;
}

void SimNetwork::Cut(NodeId from, NodeId to) { cut_.insert({from, to}); }
void SimNetwork::Heal(NodeId from, NodeId to) { cut_.erase({from, to}); }

void SimNetwork::Partition(absl::Span<const NodeId> a,
                           absl::Span<const NodeId> b) {
  for (NodeId x : a) {
    for (NodeId y : b) {
      Cut(x, y);
      Cut(y, x);
    }
  }
}

void SimNetwork::Isolate(NodeId node) { isolated_.insert(node); }
void SimNetwork::Rejoin(NodeId node) { isolated_.erase(node); }

void SimNetwork::HealAll() {
  cut_.clear();
  isolated_.clear();
}

bool SimNetwork::LinkUp(NodeId from, NodeId to) const {
  return !isolated_.contains(from) && !isolated_.contains(to) &&
         !cut_.contains({from, to});
}

absl::Status SimNetwork::Send(SimEndpoint& from, NodeId to,
                              absl::Span<const uint8_t> payload) {
  if (!from.peers_.contains(to)) {
    return absl::InvalidArgumentError(absl::StrFormat("unknown peer %d", to));
  }
  if (payload.size() > from.message_bytes_max_) {
    return absl::InvalidArgumentError(
        absl::StrFormat("message of %d bytes exceeds message_bytes_max %d",
                        payload.size(), from.message_bytes_max_));
  }
  const Link link{from.self_, to};
  size_t& link_bytes = link_bytes_in_flight_[link];
  if ((link_bytes > 0 &&
       link_bytes + payload.size() > from.send_queue_bytes_max_) ||
      in_flight_count_ >= options_.in_flight_messages_max) {
    ++from.stats_.messages_dropped;
    return absl::ResourceExhaustedError(absl::StrFormat(
        "link %d -> %d full (%d bytes in flight, %d messages in network)",
        from.self_, to, link_bytes, in_flight_count_));
  }

  // Always the same draws, whatever the outcome: changing one fault knob
  // then perturbs only what it governs, not every later random choice.
  const double drop_roll = random_.NextDouble();
  const double duplicate_roll = random_.NextDouble();
  const double reorder_roll = random_.NextDouble();
  const int64_t delay_us = static_cast<int64_t>(
      random_.Uniform(options_.delay_us_min, options_.delay_us_max));
  const int64_t extra_us = static_cast<int64_t>(
      random_.Uniform(0, options_.reorder_delay_us_max));
  const int64_t duplicate_delay_us = static_cast<int64_t>(
      random_.Uniform(options_.delay_us_min, options_.delay_us_max));

  ++stats_.sent;
  ++from.stats_.messages_sent;
  from.stats_.bytes_sent += payload.size();
  if (!LinkUp(from.self_, to)) {
    ++stats_.dropped_partition;
    return absl::OkStatus();
  }
  if (!endpoints_.contains(to)) {
    ++stats_.dropped_node_down;
    return absl::OkStatus();
  }
  if (drop_roll < options_.drop_probability) {
    ++stats_.dropped_random;
    return absl::OkStatus();
  }

  Message message;
  message.from = from.self_;
  message.cluster_id = from.cluster_id_;
  message.payload.assign(payload.begin(), payload.end());
  message.deliver_at_us = now_us_ + delay_us;
  if (reorder_roll < options_.reorder_probability) {
    // Outside the link's FIFO order: neither held back nor holding back.
    message.deliver_at_us += extra_us;
    ++stats_.reordered;
  } else {
    int64_t& floor_us = link_last_delivery_us_[link];
    message.deliver_at_us = std::max(message.deliver_at_us, floor_us);
    floor_us = message.deliver_at_us;
  }
  message.counts_against_link = true;
  link_bytes += payload.size();
  message.sequence = sequence_next_++;
  if (duplicate_roll < options_.duplicate_probability) {
    Message copy = message;
    copy.counts_against_link = false;
    copy.deliver_at_us = now_us_ + duplicate_delay_us;
    copy.sequence = sequence_next_++;
    ++stats_.duplicated;
    Enqueue(to, std::move(copy));
  }
  Enqueue(to, std::move(message));
  return absl::OkStatus();
}

void SimNetwork::Enqueue(NodeId to, Message message) {
  Inbox& inbox = inboxes_[to];
  inbox.push_back(std::move(message));
  std::push_heap(inbox.begin(), inbox.end(), Later());
  ++in_flight_count_;
}

void SimNetwork::Poll(SimEndpoint& to, const MessageHandler& handler) {
  // std::map nodes are stable, so the handler's Sends (which may add other
  // inboxes) cannot invalidate this reference.
  Inbox& inbox = inboxes_[to.self_];
  while (!inbox.empty() && inbox.front().deliver_at_us <= now_us_) {
    std::pop_heap(inbox.begin(), inbox.end(), Later());
    Message message = std::move(inbox.back());
    inbox.pop_back();
    --in_flight_count_;
    if (message.counts_against_link) {
      size_t& link_bytes = link_bytes_in_flight_[{message.from, to.self_}];
      ABSL_RAW_CHECK(link_bytes >= message.payload.size(),
                     "link byte count underflow");
      link_bytes -= message.payload.size();
    }
    if (!LinkUp(message.from, to.self_)) {
      ++stats_.dropped_partition;
      continue;
    }
    if (message.cluster_id != to.cluster_id_) {
      ++stats_.dropped_cluster;
      ++to.stats_.handshakes_rejected;
      continue;
    }
    ++stats_.delivered;
    ++to.stats_.messages_received;
    to.stats_.bytes_received += message.payload.size();
    handler(message.from, message.payload);
  }
}

void SimNetwork::Unregister(SimEndpoint& endpoint) {
  ABSL_RAW_CHECK(endpoints_.erase(endpoint.self_) == 1,
                 "unregistering an unknown endpoint");
  // A crashed node loses what was on its way to it.
  Inbox& inbox = inboxes_[endpoint.self_];
  for (const Message& message : inbox) {
    if (message.counts_against_link) {
      link_bytes_in_flight_[{message.from, endpoint.self_}] -=
          message.payload.size();
    }
    ++stats_.dropped_node_down;
  }
  in_flight_count_ -= inbox.size();
  inbox.clear();
}

}  // namespace blizzard::transport
