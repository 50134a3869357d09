#include "transport/dpdk/sim_wire.h"

#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"

namespace blizzard::transport::dpdk::testing {

SimWire::SimWire(int n, const TransportOptions& base, const EngineConfig& config,
                 const WireFaults& faults, uint64_t seed)
    : base_(base), config_(config), faults_(faults), random_(seed), n_(n) {
  for (NodeId id = 1; id <= static_cast<NodeId>(n); ++id) Start(id);
}

std::string SimWire::Mac(NodeId id) {
  return absl::StrFormat("02:00:00:00:00:%02x", id);
}

TransportOptions SimWire::OptionsFor(NodeId id) const {
  TransportOptions options = base_;
  options.self = id;
  options.listen_host = absl::StrFormat("10.0.0.%d", id);
  options.listen_port = 7400;
  options.mac = Mac(id);
  options.peers.clear();
  for (NodeId peer = 1; peer <= static_cast<NodeId>(n_); ++peer) {
    if (peer == id) continue;
    options.peers.push_back(
        {peer, absl::StrFormat("10.0.0.%d", peer), 7400, Mac(peer)});
  }
  return options;
}

void SimWire::Start(NodeId id) {
  ABSL_RAW_CHECK(engines_[id] == nullptr, "starting a running node");
  EngineConfig config = config_;
  config.epoch = epoch_next_++;
  absl::StatusOr<std::unique_ptr<FrameEngine>> engine =
      FrameEngine::Create(OptionsFor(id), config);
  ABSL_RAW_CHECK(engine.ok(), "creating a test engine failed");
  engines_[id] = std::move(*engine);
}

void SimWire::Stop(NodeId id) {
  engines_[id].reset();
  std::erase_if(wire_, [&](const InFlight& f) { return f.from == id; });
}

uint64_t SimWire::frames_from(NodeId id) const {
  auto it = frames_from_.find(id);
  return it == frames_from_.end() ? 0 : it->second;
}

void SimWire::Inject(std::vector<uint8_t> frame) {
  wire_.push_back({now_us_ + kLatencyUs, 0, std::move(frame)});
}

void SimWire::Put(NodeId from, std::vector<uint8_t> frame) {
  if (tap_) tap_(from, frame);
  if (random_.Chance(faults_.drop)) return;
  if (random_.Chance(faults_.corrupt) && !frame.empty()) {
    const size_t at = random_.Uniform(0, frame.size() - 1);
    frame[at] ^= static_cast<uint8_t>(random_.Uniform(1, 255));
  }
  const int copies = random_.Chance(faults_.duplicate) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    wire_.push_back({now_us_ + kLatencyUs, from, frame});
  }
  if (wire_.size() >= 2 && random_.Chance(faults_.swap)) {
    std::swap(wire_[wire_.size() - 1], wire_[wire_.size() - 2]);
  }
}

void SimWire::Step(const ClusterHandler& handler, int64_t step_us) {
  for (auto& [id, engine] : engines_) {
    if (engine == nullptr) continue;
    std::vector<uint8_t> frame(engine->frame_bytes_max());
    for (int i = 0; i < faults_.frames_per_step_max; ++i) {
      const size_t bytes = engine->NextFrame(now_us_, absl::MakeSpan(frame));
      if (bytes == 0) break;
      ++frames_from_[id];
      Put(id, std::vector<uint8_t>(frame.begin(), frame.begin() + bytes));
    }
  }
  now_us_ += step_us;
  // In order of sending (a swap aside); frames are copied out first because
  // a handler may Send, which never touches the wire directly.
  while (!wire_.empty() && wire_.front().deliver_at_us <= now_us_) {
    InFlight f = std::move(wire_.front());
    wire_.pop_front();
    for (auto& [id, engine] : engines_) {
      if (engine == nullptr || id == f.from) continue;
      const NodeId to = id;
      engine->OnFrame(f.bytes, now_us_,
                      [&](NodeId from, absl::Span<const uint8_t> payload) {
                        handler(to, from, payload);
                      });
    }
  }
  for (auto& [id, engine] : engines_) {
    if (engine != nullptr) engine->Expire(now_us_);
  }
}

}  // namespace blizzard::transport::dpdk::testing
