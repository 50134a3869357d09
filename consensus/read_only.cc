#include "consensus/read_only.h"

#include <algorithm>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::consensus {

bool ReadOnly::Contains(uint64_t context) const {
  return std::any_of(queue_.begin(), queue_.end(), [&](const Request& r) {
    return r.context == context;
  });
}

void ReadOnly::Add(Index index, uint64_t context, NodeId self) {
  ABSL_RAW_CHECK(context != 0, "read context 0 is reserved");
  ABSL_RAW_CHECK(!Contains(context), "read context already pending");
  ABSL_RAW_CHECK(queue_.empty() || queue_.back().index <= index,
                 "read indices must not decrease");
  queue_.push_back(Request{index, context, {self}});
}

const std::vector<NodeId>* ReadOnly::RecvAck(NodeId from, uint64_t context) {
  for (Request& r : queue_) {
    if (r.context != context) continue;
    if (std::find(r.acks.begin(), r.acks.end(), from) == r.acks.end()) {
      r.acks.push_back(from);
    }
    return &r.acks;
  }
  return nullptr;
}

std::vector<ReadOnly::Request> ReadOnly::Advance(uint64_t context) {
  std::vector<Request> out;
  if (!Contains(context)) return out;
  for (;;) {
    out.push_back(std::move(queue_.front()));
    queue_.pop_front();
    if (out.back().context == context) return out;
  }
}

uint64_t ReadOnly::LastPendingContext() const {
  return queue_.empty() ? 0 : queue_.back().context;
}

}  // namespace blizzard::consensus
