// A simulated Ethernet segment for FrameEngine tests: every engine's frames
// go onto one wire with a fixed latency and seeded faults (drop, duplicate,
// corrupt a byte, swap with the next frame), and are delivered to every other
// engine, as a switch flooding unknown destinations would (engines ignore
// frames not addressed to them). Time is simulated: one Step moves it by
// step_us. The same seed gives the same run.
#ifndef BLIZZARD_TRANSPORT_DPDK_SIM_WIRE_H_
#define BLIZZARD_TRANSPORT_DPDK_SIM_WIRE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "transport/dpdk/frame_engine.h"
#include "transport/sim/splitmix64.h"
#include "transport/transport.h"

namespace blizzard::transport::dpdk::testing {

struct WireFaults {
  double drop = 0;
  double duplicate = 0;
  double corrupt = 0;  // One random byte of the frame changed.
  double swap = 0;     // Delivered after the next frame.
  // Frames one engine may emit per step (its NIC's speed): a full window
  // needs several steps, as on a real link.
  int frames_per_step_max = 64;
};

using ClusterHandler =
    std::function<void(NodeId to, NodeId from, absl::Span<const uint8_t>)>;

class SimWire {
 public:
  // Nodes 1..n with MACs 02:00:00:00:00:<id>, hosts 10.0.0.<id>.
  SimWire(int n, const TransportOptions& base, const EngineConfig& config,
          const WireFaults& faults, uint64_t seed);

  FrameEngine& node(NodeId id) { return *engines_.at(id); }
  bool running(NodeId id) const { return engines_.at(id) != nullptr; }
  int64_t now_us() const { return now_us_; }
  // Frames put on the wire by `id` (data, acks, resends), all time.
  uint64_t frames_from(NodeId id) const;

  // Every engine emits what it has due (up to frames_per_step_max), time
  // moves by step_us, and frames whose latency has passed are delivered.
  void Step(const ClusterHandler& handler, int64_t step_us = 10);

  // Crash: the engine and its frames in flight vanish. Restart: a new
  // engine (new epoch) for the same node.
  void Stop(NodeId id);
  void Start(NodeId id);

  // Puts raw bytes on the wire as if sent by `from` (for hostile frames).
  void Inject(std::vector<uint8_t> frame);
  // Lets a test see (and change) frames as they are sent.
  void SetTap(std::function<void(NodeId from, std::vector<uint8_t>& frame)> tap) {
    tap_ = std::move(tap);
  }

  static std::string Mac(NodeId id);
  TransportOptions OptionsFor(NodeId id) const;

 private:
  struct InFlight {
    int64_t deliver_at_us;
    NodeId from;  // 0: injected.
    std::vector<uint8_t> bytes;
  };

  void Put(NodeId from, std::vector<uint8_t> frame);

  TransportOptions base_;
  EngineConfig config_;
  WireFaults faults_;
  SplitMix64 random_;
  int n_;
  int64_t now_us_ = 1000000;
  uint64_t epoch_next_ = 1;
  std::map<NodeId, std::unique_ptr<FrameEngine>> engines_;
  std::map<NodeId, uint64_t> frames_from_;
  std::deque<InFlight> wire_;
  std::function<void(NodeId, std::vector<uint8_t>&)> tap_;
  static constexpr int64_t kLatencyUs = 20;
};

}  // namespace blizzard::transport::dpdk::testing

#endif  // BLIZZARD_TRANSPORT_DPDK_SIM_WIRE_H_
