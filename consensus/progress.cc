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

void Progress::Reset(Index last_index) {
  match_ = 0;
  next_ = last_index + 1;
  state_ = ProgressState::kProbe;
  probe_sent_ = false;
  recent_active_ = false;
  inflights_.Reset();
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
  CheckInvariants();
}

void Progress::BecomeReplicate() {
  state_ = ProgressState::kReplicate;
  probe_sent_ = false;
  next_ = match_ + 1;
  inflights_.Reset();
  CheckInvariants();
}

bool Progress::IsPaused() const {
  return state_ == ProgressState::kProbe ? probe_sent_ : inflights_.Full();
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
                 "progress: inflight appends in probe state");
}

}  // namespace blizzard::consensus
