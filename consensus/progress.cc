#include "consensus/progress.h"

#include <algorithm>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::consensus {

Inflights::Inflights(int capacity) : buffer_(static_cast<size_t>(capacity)) {
  ABSL_RAW_CHECK(capacity > 0, "inflights capacity must be positive");
}

void Inflights::Add(Index last) {
  ABSL_RAW_CHECK(!Full(), "Add to full inflights");
  if (count_ > 0) {
    const Index newest = buffer_[(start_ + count_ - 1) % buffer_.size()];
    ABSL_RAW_CHECK(last > newest, "inflight indices must increase");
  }
  buffer_[(start_ + count_) % buffer_.size()] = last;
  ++count_;
}

void Inflights::FreeLE(Index to) {
  while (count_ > 0 && buffer_[start_] <= to) {
    start_ = (start_ + 1) % buffer_.size();
    --count_;
  }
  if (count_ == 0) start_ = 0;
}

void Inflights::FreeFirstOne() {
  if (count_ == 0) return;
  start_ = (start_ + 1) % buffer_.size();
  --count_;
}

const char* ProgressStateName(ProgressState state) {
  switch (state) {
    case ProgressState::kProbe:
      return "probe";
    case ProgressState::kReplicate:
      return "replicate";
    case ProgressState::kSnapshot:
      return "snapshot";
  }
  return "unknown";
}

// ---- SnapshotTransfer ----

SnapshotTransfer::SnapshotTransfer(const SnapshotMeta& meta,
                                   uint64_t window_bytes)
    : meta_(meta), window_bytes_(window_bytes) {
  ABSL_RAW_CHECK(window_bytes > 0, "snapshot window of 0 bytes");
  ABSL_RAW_CHECK(meta.index > 0, "transfer of no snapshot");
}

bool SnapshotTransfer::CanSend() const {
  return !final_sent_ && next_ - acked_ < window_bytes_;
}

void SnapshotTransfer::Sent(uint64_t bytes) {
  ABSL_RAW_CHECK(CanSend(), "snapshot chunk sent beyond the window");
  ABSL_RAW_CHECK(bytes <= meta_.bytes - next_, "chunk beyond the snapshot");
  next_ += bytes;
  if (next_ == meta_.bytes) final_sent_ = true;
  CheckInvariants();
}

void SnapshotTransfer::OnAck(uint64_t offset) {
  if (offset > meta_.bytes) return;  // Not about this snapshot.
  if (offset > acked_) {
    acked_ = offset;
    idle_ticks_ = 0;
    rewound_to_.reset();
  }
  if (next_ < acked_) {
    // The follower holds more than we sent since the last rewind.
    next_ = acked_;
    final_sent_ = next_ == meta_.bytes && final_sent_;
  }
  CheckInvariants();
}

void SnapshotTransfer::OnGap(uint64_t offset) {
  if (offset > meta_.bytes) return;
  if (rewound_to_ == offset) return;  // Already resending from there.
  OnAck(offset);
  rewound_to_ = offset;
  // Below acked_ only if the follower lost what it had (it restarted).
  acked_ = offset;
  next_ = offset;
  final_sent_ = false;
  CheckInvariants();
}

bool SnapshotTransfer::Tick(int stall_ticks) {
  if (++idle_ticks_ < stall_ticks) return false;
  idle_ticks_ = 0;
  rewound_to_.reset();
  if (acked_ == meta_.bytes) acked_ = 0;  // Installation never confirmed.
  next_ = acked_;
  final_sent_ = false;
  CheckInvariants();
  return true;
}

void SnapshotTransfer::CheckInvariants() const {
  ABSL_RAW_CHECK(acked_ <= next_ && next_ <= meta_.bytes,
                 "snapshot transfer: acked <= next <= size violated");
  ABSL_RAW_CHECK(!final_sent_ || next_ == meta_.bytes,
                 "snapshot transfer: final chunk flag without reaching the end");
}

// ---- Progress ----

void Progress::Reset(Index last_index) {
  match_ = 0;
  next_ = last_index + 1;
  state_ = ProgressState::kProbe;
  probe_sent_ = false;
  recent_active_ = false;
  inflights_.Reset();
  snapshot_.reset();
  lease_ack_tick_.reset();
  CheckInvariants();
}

void Progress::ResetAsSelf(Index last_index) {
  Reset(last_index);
  match_ = last_index;
  state_ = ProgressState::kReplicate;
  recent_active_ = true;
  CheckInvariants();
}

void Progress::BecomeProbe() {
  state_ = ProgressState::kProbe;
  probe_sent_ = false;
  next_ = match_ + 1;
  inflights_.Reset();
  snapshot_.reset();
  CheckInvariants();
}

void Progress::BecomeReplicate() {
  state_ = ProgressState::kReplicate;
  probe_sent_ = false;
  next_ = match_ + 1;
  inflights_.Reset();
  snapshot_.reset();
  CheckInvariants();
}

void Progress::BecomeSnapshot(const SnapshotMeta& meta, uint64_t window_bytes) {
  state_ = ProgressState::kSnapshot;
  probe_sent_ = false;
  inflights_.Reset();
  snapshot_.emplace(meta, window_bytes);
  CheckInvariants();
}

void Progress::OnLeaseAck(uint64_t sent_tick) {
  if (!lease_ack_tick_.has_value() || *lease_ack_tick_ < sent_tick) {
    lease_ack_tick_ = sent_tick;
  }
}

bool Progress::IsPaused() const {
  switch (state_) {
    case ProgressState::kProbe:
      return probe_sent_;
    case ProgressState::kReplicate:
      return inflights_.Full();
    case ProgressState::kSnapshot:
      return true;  // No appends until the snapshot is installed.
  }
  return true;
}

void Progress::SentAppend(Index last, bool had_entries) {
  ABSL_RAW_CHECK(!IsPaused(), "append sent to a paused follower");
  if (state_ == ProgressState::kProbe) {
    probe_sent_ = true;
  } else if (had_entries) {
    ABSL_RAW_CHECK(last >= next_, "sent entries below next");
    next_ = last + 1;
    inflights_.Add(last);
  }
  CheckInvariants();
}

bool Progress::MaybeUpdate(Index n) {
  bool updated = false;
  if (match_ < n) {
    match_ = n;
    updated = true;
    probe_sent_ = false;
  }
  next_ = std::max(next_, n + 1);
  CheckInvariants();
  return updated;
}

bool Progress::MaybeDecrTo(Index rejected, Index match_hint) {
  // Rejections of appends sent before the transfer started are stale.
  if (state_ == ProgressState::kSnapshot) return false;
  if (state_ == ProgressState::kReplicate) {
    // Rejections at or below match are answers to appends that raced with
    // later, accepted ones.
    if (rejected <= match_) return false;
    next_ = match_ + 1;
    return true;
  }
  // In probe state only the answer to the one outstanding append counts.
  if (next_ - 1 != rejected) return false;
  next_ = std::max(std::min(rejected, match_hint + 1), match_ + 1);
  probe_sent_ = false;
  CheckInvariants();
  return true;
}

void Progress::OnHeartbeatResponse() {
  recent_active_ = true;
  probe_sent_ = false;
  if (state_ == ProgressState::kReplicate && inflights_.Full()) {
    inflights_.FreeFirstOne();
  }
}

void Progress::CheckInvariants() const {
  ABSL_RAW_CHECK(match_ < next_, "progress: match must be below next");
  ABSL_RAW_CHECK(state_ == ProgressState::kReplicate || inflights_.Count() == 0,
                 "progress: inflight appends outside replicate state");
  ABSL_RAW_CHECK((state_ == ProgressState::kSnapshot) == snapshot_.has_value(),
                 "progress: snapshot transfer outside snapshot state");
}

}  // namespace blizzard::consensus
