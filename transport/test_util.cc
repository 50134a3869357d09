#include "transport/test_util.h"

#include <poll.h>

#include <cstring>

#include "absl/strings/str_format.h"
#include "transport/sim/splitmix64.h"

namespace blizzard::transport::testing {
namespace {

uint64_t StreamSeed(NodeId from, NodeId to, uint64_t seq) {
  SplitMix64 mix(from * 0x100000001b3ull ^ (to << 24) ^ (seq << 40) ^ seq);
  return mix.Next();
}

}  // namespace

size_t MixedPayloadSize(uint64_t seed, NodeId from, NodeId to, uint64_t seq) {
  if (seq == 0) return 1;
  if (seq == 1) return 1u << 20;
  if (seq == 2) return 0;
  SplitMix64 random(seed ^ StreamSeed(from, to, seq));
  uint64_t roll = random.Uniform(0, 99);
  if (roll < 60) return random.Uniform(1, 256);
  if (roll < 92) return random.Uniform(257, 64u << 10);
  return random.Uniform((64u << 10) + 1, 1u << 20);
}

std::vector<uint8_t> MakePayload(NodeId from, NodeId to, uint64_t seq,
                                 size_t size) {
  std::vector<uint8_t> payload(size);
  SplitMix64 random(StreamSeed(from, to, seq));
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word = random.Next();
    std::memcpy(payload.data() + i, &word, 8);
  }
  uint64_t word = random.Next();
  std::memcpy(payload.data() + i, &word, size - i);
  if (size >= 16) {
    uint64_t route = (from << 32) | (to & 0xffffffff);
    std::memcpy(&payload[0], &seq, 8);
    std::memcpy(&payload[8], &route, 8);
  }
  return payload;
}

StreamChecker::StreamChecker(SizeFn size_of, bool gaps_allowed)
    : size_of_(std::move(size_of)), gaps_allowed_(gaps_allowed) {}

std::vector<uint8_t> StreamChecker::Next(NodeId from, NodeId to) const {
  uint64_t seq = sent(from, to);
  return MakePayload(from, to, seq, size_of_(from, to, seq));
}

void StreamChecker::OnReceive(NodeId to, NodeId from,
                              absl::Span<const uint8_t> payload) {
  uint64_t& expected = expected_[{from, to}];
  uint64_t seq = expected;
  if (gaps_allowed_ && payload.size() >= 16) {
    std::memcpy(&seq, payload.data(), 8);
    if (seq < expected) {
      errors_.push_back(absl::StrFormat(
          "%d -> %d: got seq %d after %d (repeat or reorder)", from, to, seq,
          expected));
      return;
    }
  }
  if (seq >= sent(from, to)) {
    errors_.push_back(absl::StrFormat("%d -> %d: seq %d was never sent", from,
                                      to, seq));
    return;
  }
  std::vector<uint8_t> want = MakePayload(from, to, seq, size_of_(from, to, seq));
  if (absl::MakeConstSpan(want) != payload) {
    errors_.push_back(absl::StrFormat(
        "%d -> %d: seq %d: payload of %d bytes differs (want %d bytes)", from,
        to, seq, payload.size(), want.size()));
  }
  expected = seq + 1;
  ++received_[{from, to}];
}

uint64_t StreamChecker::sent(NodeId from, NodeId to) const {
  auto it = sent_.find({from, to});
  return it == sent_.end() ? 0 : it->second;
}

uint64_t StreamChecker::received(NodeId from, NodeId to) const {
  auto it = received_.find({from, to});
  return it == received_.end() ? 0 : it->second;
}

uint64_t StreamChecker::expected(NodeId from, NodeId to) const {
  auto it = expected_.find({from, to});
  return it == expected_.end() ? 0 : it->second;
}

bool StreamChecker::AllDelivered() const {
  for (const auto& [link, count] : sent_) {
    if (received(link.first, link.second) != count) return false;
  }
  return true;
}

bool StepUntil(const std::function<void()>& step,
               const std::function<bool()>& done, absl::Duration bound) {
  const absl::Time deadline = absl::Now() + bound;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    step();
  }
  return true;
}

void WaitReadable(absl::Span<const int> fds, int wait_ms) {
  std::vector<pollfd> pfds;
  for (int fd : fds) {
    if (fd >= 0) pfds.push_back(pollfd{fd, POLLIN, 0});
  }
  poll(pfds.data(), pfds.size(), wait_ms);
}

}  // namespace blizzard::transport::testing
