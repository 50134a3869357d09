// Exponential back-off between reconnect attempts: min, 2*min, 4*min, ...
// capped at max; Reset() after a connection proved healthy.
//
// No jitter: each pair of nodes uses two one-way connections, each dialed by
// one side only, so there is no dial race for jitter to break.
#ifndef BLIZZARD_TRANSPORT_TCP_BACKOFF_H_
#define BLIZZARD_TRANSPORT_TCP_BACKOFF_H_

#include <algorithm>
#include <cstdint>

#include "absl/base/internal/raw_logging.h"

namespace blizzard::transport::tcp {

class Backoff {
 public:
  Backoff(int64_t delay_ms_min, int64_t delay_ms_max)
      : delay_ms_min_(delay_ms_min),
        delay_ms_max_(delay_ms_max),
        delay_ms_next_(delay_ms_min) {
    ABSL_RAW_CHECK(delay_ms_min > 0 && delay_ms_min <= delay_ms_max,
                   "backoff needs 0 < min <= max");
  }

  // The delay before the next attempt; each call doubles the following one.
  int64_t Next() {
    int64_t delay_ms = delay_ms_next_;
    delay_ms_next_ = std::min(delay_ms_max_, delay_ms_next_ * 2);
    ABSL_RAW_CHECK(delay_ms >= delay_ms_min_ && delay_ms <= delay_ms_max_,
                   "backoff delay out of range");
    return delay_ms;
  }

  void Reset() { delay_ms_next_ = delay_ms_min_; }

  int64_t delay_ms_max() const { return delay_ms_max_; }

 private:
  int64_t delay_ms_min_;
  int64_t delay_ms_max_;
  int64_t delay_ms_next_;
};

}  // namespace blizzard::transport::tcp

#endif  // BLIZZARD_TRANSPORT_TCP_BACKOFF_H_
