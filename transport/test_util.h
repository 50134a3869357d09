// Test helpers shared by the transport tests: verifiable message streams,
// bounded poll loops, and a small TCP cluster on 127.0.0.1.
#ifndef BLIZZARD_TRANSPORT_TEST_UTIL_H_
#define BLIZZARD_TRANSPORT_TEST_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "transport/transport.h"

namespace blizzard::transport::testing {

// Size of message `seq` on stream from -> to: a seeded mix of 1 B .. 1 MiB
// (mostly small), with seq 0 = 1 B, seq 1 = 1 MiB and seq 2 = 0 B so every
// run covers the edges.
size_t MixedPayloadSize(uint64_t seed, NodeId from, NodeId to, uint64_t seq);

// Deterministic content of message `seq` from -> to. Messages of 16 bytes or
// more start with seq and (from, to), so a receiver can tell which one it
// got even when some were lost.
std::vector<uint8_t> MakePayload(NodeId from, NodeId to, uint64_t seq,
                                 size_t size);

// Checks received streams against MakePayload: per (from, to), every message
// must be the next one expected (or, with gaps allowed, a later one, never an
// earlier one or a repeat). Sizes come from `size_of`.
class StreamChecker {
 public:
  using SizeFn = std::function<size_t(NodeId from, NodeId to, uint64_t seq)>;
  StreamChecker(SizeFn size_of, bool gaps_allowed);

  // The payload of the next message from -> to; Commit after Send succeeded.
  std::vector<uint8_t> Next(NodeId from, NodeId to) const;
  void Commit(NodeId from, NodeId to) { ++sent_[{from, to}]; }

  void OnReceive(NodeId to, NodeId from, absl::Span<const uint8_t> payload);

  uint64_t sent(NodeId from, NodeId to) const;
  uint64_t received(NodeId from, NodeId to) const;
  // Next sequence the receiver expects (== sent when nothing was lost).
  uint64_t expected(NodeId from, NodeId to) const;
  bool AllDelivered() const;  // Every committed message arrived.
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  SizeFn size_of_;
  bool gaps_allowed_;
  std::map<std::pair<NodeId, NodeId>, uint64_t> sent_;
  std::map<std::pair<NodeId, NodeId>, uint64_t> received_;
  std::map<std::pair<NodeId, NodeId>, uint64_t> expected_;
  std::vector<std::string> errors_;
};

// Calls `step` until `done` or until `bound` of wall time passed (a bound on
// a hung test, never an assertion on speed). Returns done().
bool StepUntil(const std::function<void()>& step,
               const std::function<bool()>& done,
               absl::Duration bound = absl::Seconds(60));

// Waits until any of `fds` is readable or `wait_ms` passed.
void WaitReadable(absl::Span<const int> fds, int wait_ms);

}  // namespace blizzard::transport::testing

#endif  // BLIZZARD_TRANSPORT_TEST_UTIL_H_
