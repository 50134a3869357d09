// The leader's view of one follower's log (etcd's tracker.Progress) and the
// ring of appends in flight to it. Internal to //consensus.
//
// A follower is in one of three states:
//   kProbe      the leader does not know where the logs match; it sends one
//               append and waits for the answer (or the next heartbeat
//               response) before sending another.
//   kReplicate  the logs match up to `match`; the leader streams appends
//               (pipelining), optimistically advancing `next`, with at most
//               `inflight_appends_max` unanswered appends.
//   kSnapshot   the follower needs entries the leader compacted: the leader
//               streams its snapshot (SnapshotTransfer) and sends no
//               appends until the follower acknowledges the installed
//               snapshot.
#ifndef BLIZZARD_CONSENSUS_PROGRESS_H_
#define BLIZZARD_CONSENSUS_PROGRESS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/base/internal/raw_logging.h"
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

enum class ProgressState : uint8_t { kProbe, kReplicate, kSnapshot };
const char* ProgressStateName(ProgressState state);

// The leader's side of one snapshot transfer: a byte stream of the
// snapshot `meta` with at most `window_bytes` sent but unacknowledged.
// Acknowledgements are cumulative (the follower holds [0, offset)); a gap
// report makes the sender go back to the follower's offset (once per
// offset, since every chunk past a lost one reports the same gap); a
// transfer without progress for a while restarts from the acknowledged
// offset, or from 0 if everything was acknowledged but the installation
// was never confirmed (the follower may have crashed before installing).
class SnapshotTransfer {
 public:
  SnapshotTransfer(const SnapshotMeta& meta, uint64_t window_bytes);

  const SnapshotMeta& meta() const { return meta_; }
  uint64_t next_offset() const { return next_; }
  uint64_t acked_offset() const { return acked_; }
  // May the chunk starting at next_offset() be sent now?
  bool CanSend() const;
  // The chunk [next_offset(), next_offset() + bytes) was sent.
  void Sent(uint64_t bytes);
  // The follower holds [0, offset).
  void OnAck(uint64_t offset);
  // The follower holds [0, offset) and got a chunk beyond it.
  void OnGap(uint64_t offset);
  // One leader tick; true if the transfer stalled for `stall_ticks` and was
  // rewound (the caller sends again).
  bool Tick(int stall_ticks);

 private:
  void CheckInvariants() const;

  SnapshotMeta meta_;
  uint64_t window_bytes_;
  uint64_t next_ = 0;    // Next byte to send.
  uint64_t acked_ = 0;   // Bytes the follower holds.
  bool final_sent_ = false;  // The chunk ending at meta_.bytes went out.
  std::optional<uint64_t> rewound_to_;  // Last gap acted upon.
  int idle_ticks_ = 0;
};

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

  // kSnapshot: stream `meta` (window in bytes); leaves with
  // BecomeReplicate once the follower holds the snapshot.
  void BecomeSnapshot(const SnapshotMeta& meta, uint64_t window_bytes);
  SnapshotTransfer& snapshot() {
    ABSL_RAW_CHECK(state_ == ProgressState::kSnapshot && snapshot_.has_value(),
                   "no snapshot transfer");
    return *snapshot_;
  }

  // Leader lease: the follower answered a heartbeat the leader sent at
  // tick `sent_tick` (the latest one counts).
  void OnLeaseAck(uint64_t sent_tick);
  std::optional<uint64_t> lease_ack_tick() const { return lease_ack_tick_; }

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
  std::optional<SnapshotTransfer> snapshot_;  // Only in kSnapshot.
  std::optional<uint64_t> lease_ack_tick_;
};

}  // namespace blizzard::consensus

#endif  // BLIZZARD_CONSENSUS_PROGRESS_H_
