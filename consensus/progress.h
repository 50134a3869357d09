// The leader's view of one follower's log (etcd's tracker.Progress) and the
// ring of appends in flight to it. Internal to //consensus.
//
// A follower is in one of two states:
//   kProbe      the leader does not know where the logs match; it sends one
//               append and waits for the answer (or the next heartbeat
//               response) before sending another.
//   kReplicate  the logs match up to `match`; the leader streams appends
//               (pipelining), optimistically advancing `next`, with at most
//               `inflight_appends_max` unanswered appends.
#ifndef BLIZZARD_CONSENSUS_PROGRESS_H_
#define BLIZZARD_CONSENSUS_PROGRESS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "consensus/types.h"

namespace blizzard::consensus {

// Last indices of the appends in flight, oldest first, in a fixed ring
// allocated once.
class Inflights {
 public:
  explicit Inflights(int capacity);

  bool Full() const { return count_ == buffer_.size(); }
  size_t Count() const { return count_; }
  // `last` must exceed every index already in flight.
  void Add(Index last);
  // Frees every append whose last index is <= `to` (it was acknowledged).
  void FreeLE(Index to);
  // Frees the oldest one: a heartbeat response proves the follower is alive,
  // so one lost append must not stall the stream forever.
  void FreeFirstOne();
  void Reset() { start_ = count_ = 0; }

 private:
  std::vector<Index> buffer_;
  size_t start_ = 0;
  size_t count_ = 0;
};

enum class ProgressState : uint8_t { kProbe, kReplicate };

class Progress {
 public:
  explicit Progress(int inflight_appends_max)
      : inflights_(inflight_appends_max) {}

  Index match() const { return match_; }
  Index next() const { return next_; }
  ProgressState state() const { return state_; }
  bool recent_active() const { return recent_active_; }
  const Inflights& inflights() const { return inflights_; }

  // A new leader's starting point: nothing known, next = its last + 1.
  void Reset(Index last_index);
  // The leader itself: it holds everything it has.
  void ResetAsSelf(Index last_index);

  void BecomeProbe();
  void BecomeReplicate();

  // May another append be sent now?
  bool IsPaused() const;
  // An append ending at `last` (== next - 1 when it carried no entries) was
  // sent.
  void SentAppend(Index last, bool had_entries);
  // The follower holds entries up to `n`. False if that is old news.
  bool MaybeUpdate(Index n);
  // The follower rejected an append at `rejected`, hinting that the logs may
  // match at `match_hint`. False if the rejection is stale.
  bool MaybeDecrTo(Index rejected, Index match_hint);
  // A heartbeat response arrived: the follower is alive.
  void OnHeartbeatResponse();

  void set_recent_active(bool active) { recent_active_ = active; }
  // Ack of the appends up to `n` in replicate state.
  void FreeInflightsUpTo(Index n) { inflights_.FreeLE(n); }

 private:
  void CheckInvariants() const;

  Index match_ = 0;
  Index next_ = 1;
  ProgressState state_ = ProgressState::kProbe;
  bool probe_sent_ = false;  // kProbe: an append is unanswered.
  bool recent_active_ = false;
  Inflights inflights_;
};

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_PROGRESS_H_
