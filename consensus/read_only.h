// The leader's queue of ReadIndex requests waiting for a quorum to confirm
// its leadership (etcd's readOnly, ReadOnlySafe). Internal to //consensus.
//
// A request registered at commit index c is safe once a quorum answered a
// heartbeat sent after it was registered: then no other leader could have
// committed anything c does not cover. Heartbeats carry the context of the
// newest pending request, so an answer for context k also confirms every
// request registered before k.
#ifndef BLIZZARD_CONSENSUS_READ_ONLY_H_
#define BLIZZARD_CONSENSUS_READ_ONLY_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "consensus/types.h"

namespace blizzard::consensus {

class ReadOnly {
 public:
  struct Request {
    Index index = 0;
    uint64_t context = 0;
    std::vector<NodeId> acks;  // Distinct nodes, the leader included.
  };

  size_t size() const { return queue_.size(); }
  bool Contains(uint64_t context) const;
  // `context` must be nonzero and not pending.
  void Add(Index index, uint64_t context, NodeId self);
  // Records `from`'s answer to the heartbeat carrying `context`; returns the
  // distinct nodes that acknowledged it (null if the context is not
  // pending). The caller counts the voters among them: membership may
  // change while a read waits.
  const std::vector<NodeId>* RecvAck(NodeId from, uint64_t context);
  // Removes and returns every request up to and including `context`.
  std::vector<Request> Advance(uint64_t context);
  // Context of the newest request (0 if none): what heartbeats carry.
  uint64_t LastPendingContext() const;
  void Reset() { queue_.clear(); }

 private:
  std::deque<Request> queue_;
};

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_READ_ONLY_H_
