// Crash test (a): random histories of Append (with and without Raft
// conflicts), TruncateSuffix, CompactPrefix, Reset and SetHardState run on the
// simulated twin. After EVERY persistence event (store, flush, fence) the test
// cuts power twice -- keeping only persisted bytes, and keeping a random
// subset of the unpersisted 8-byte words -- recovers a log from each image,
// and checks that it equals one of the states the interrupted operation may
// leave: the state before it, after it, or (a conflicting append) the
// truncated state in between. So every operation that returned is durable,
// none is half-applied, and recovery never reports damage after a crash.
// Every ~200 steps the run also restarts from a mid-operation crash image and
// goes on with the recovered log, so the code after a torn update is tested
// too. A failure prints seed=N; the run replays exactly from the seed.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "pmemlog/log_core.h"
#include "pmemlog/log_format.h"
#include "pmemlog/sim_persistence.h"
#include "pmemlog/test_util.h"

namespace blizzard::pmemlog {
namespace {

using ::blizzard::pmemlog::testing::DiffLog;
using ::blizzard::pmemlog::testing::LogModel;
using ::blizzard::pmemlog::testing::MakeEntry;
using ::blizzard::pmemlog::testing::NewSimLog;
using ::blizzard::pmemlog::testing::OpenSimImage;
using ::blizzard::pmemlog::testing::SimLog;

constexpr uint64_t kRing = 16 << 10;  // Small: the ring wraps and fills often.
constexpr int kSteps = 4000;
constexpr int kRestartEverySteps = 200;

class CrashRun {
 public:
  explicit CrashRun(uint64_t seed)
      : seed_(seed),
        evict_(seed % 2 == 0 ? 0.25 : 0.0),
        rng_(seed),
        live_(NewSimLog(kRing, seed, evict_)) {
    Hook();
  }

  void Run() {
    for (step_ = 0; step_ < kSteps && !failed_; ++step_) {
      restart_event_ = 0;
      if (step_ > 0 && step_ % kRestartEverySteps == 0) {
        restart_event_ = live_.sim->events() + 1 + rng_() % 6;
      }
      Step();
      if (failed_) break;
      if (!restart_image_.empty()) Restart();
      // Between operations everything acknowledged is durable.
      const std::string diff = DiffLog(*live_.log, acked_);
      if (!diff.empty()) Fail("live log differs from the model: " + diff);
    }
    EXPECT_GT(checks_, uint64_t{kSteps}) << "seed=" << seed_;
  }

  uint64_t checks() const { return checks_; }
  uint64_t restarts() const { return restarts_; }
  bool failed() const { return failed_; }

 private:
  void Hook() {
    live_.sim->set_event_hook([this](uint64_t event) { OnEvent(event); });
  }

  void Fail(const std::string& what) {
    if (failed_) return;
    failed_ = true;
    ADD_FAILURE() << absl::StrFormat("seed=%d step=%d op=%s event=%d: %s", seed_, step_, op_,
                                     live_.sim->events(), what);
  }

  void OnEvent(uint64_t event) {
    if (failed_) return;
    for (CrashMode mode : {CrashMode::kPersistedOnly, CrashMode::kTorn}) {
      std::vector<uint8_t> image = live_.sim->CrashImage(mode);
      absl::StatusOr<SimLog> recovered = OpenSimImage(image, kRing, seed_);
      ++checks_;
      if (!recovered.ok()) {
        return Fail(
            absl::StrFormat("recovery after a crash failed: %s", recovered.status().ToString()));
      }
      if (MatchAllowed(*recovered->log) < 0) {
        return Fail(absl::StrFormat("recovered log [%d, %d] is none of the %d allowed states",
                                    recovered->log->FirstIndex(), recovered->log->LastIndex(),
                                    allowed_.size()));
      }
      if (event == restart_event_ && mode == CrashMode::kTorn) {
        restart_image_ = std::move(image);
        restart_allowed_ = allowed_;
      }
    }
  }

  int MatchAllowed(const LogCore& log) const {
    for (size_t i = 0; i < allowed_.size(); ++i) {
      if (DiffLog(log, allowed_[i]).empty()) return static_cast<int>(i);
    }
    return -1;
  }

  // Power fails in the middle of the last operation; the node restarts from
  // what survived and the run continues from the recovered state.
  void Restart() {
    absl::StatusOr<SimLog> recovered = OpenSimImage(restart_image_, kRing, seed_ + step_, evict_);
    restart_image_.clear();
    if (!recovered.ok()) return Fail("restart failed: " + recovered.status().ToString());
    allowed_ = restart_allowed_;
    const int match = MatchAllowed(*recovered->log);
    if (match < 0) return Fail("restart recovered an unexpected state");
    acked_ = allowed_[match];
    allowed_ = {acked_};
    live_ = std::move(*recovered);
    Hook();
    ++restarts_;
  }

  // Runs `op` with `outcomes` as the allowed crash states; `after` is the
  // model if it returns OK. Returns the op's status.
  absl::Status Do(const std::string& name, std::vector<LogModel> outcomes, const LogModel& after,
                  const std::function<absl::Status()>& op) {
    op_ = name;
    allowed_ = std::move(outcomes);
    const absl::Status s = op();
    if (s.ok()) acked_ = after;
    allowed_ = {acked_};
    return s;
  }

  void Step() {
    const uint64_t first = acked_.first_index;
    const uint64_t last = acked_.LastIndex();
    const uint64_t roll = rng_() % 100;
    if (roll < 55) {
      DoAppend(first, last);
    } else if (roll < 65) {
      const uint64_t from = first + rng_() % (last - first + 2);
      LogModel after = acked_;
      after.TruncateSuffix(from);
      Expect(
          Do("truncate", {acked_, after}, after, [&] { return live_.log->TruncateSuffix(from); }));
    } else if (roll < 80) {
      Compact(first + rng_() % (last - first + 2));
    } else if (roll < 97) {
      HardState hs = acked_.hard_state;
      if (rng_() % 3 == 0) {
        ++hs.term;
        hs.vote = 0;
      }
      if (hs.vote == 0 && rng_() % 2 == 0) hs.vote = 1 + rng_() % 5;
      hs.commit = rng_() % (last + 1);
      LogModel after = acked_;
      after.hard_state = hs;
      Expect(Do("hard state", {acked_, after}, after, [&] { return live_.log->SetHardState(hs); }));
    } else {
      const uint64_t index = last + rng_() % 5;
      const uint64_t term = std::max(acked_.TermAt(last), acked_.hard_state.term);
      LogModel after = acked_;
      after.Reset(index, term);
      Expect(Do("reset", {acked_, after}, after, [&] { return live_.log->Reset(index, term); }));
    }
  }

  void DoAppend(uint64_t first, uint64_t last) {
    // Mostly at the end; sometimes a Raft conflict rewriting a suffix.
    const uint64_t front = rng_() % 5 == 0 ? first + rng_() % (last - first + 2) : last + 1;
    if (rng_() % 10 == 0) ++term_;
    const uint64_t term = std::max(term_, acked_.TermAt(front - 1));
    std::vector<LogEntry> batch;
    const uint64_t count = 1 + rng_() % 6;
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t bytes = rng_() % 8 == 0 ? rng_() % 3000 : rng_() % 300;
      batch.push_back(MakeEntry(front + i, term, bytes, seed_ * 1000003 + step_));
    }
    LogModel truncated = acked_;
    truncated.TruncateSuffix(front);
    LogModel after = acked_;
    after.Append(batch);
    std::vector<LogModel> outcomes = {acked_, after};
    if (front <= last) outcomes.push_back(truncated);
    const absl::Status s = Do("append", outcomes, after, [&] { return live_.log->Append(batch); });
    if (s.code() == absl::StatusCode::kResourceExhausted) {
      // Full: the log must be untouched; make room like a node would.
      Compact(acked_.LastIndex() + 1 - std::min<uint64_t>(2, acked_.entries.size()));
      return;
    }
    Expect(s);
  }

  void Compact(uint64_t upto) {
    LogModel after = acked_;
    after.CompactPrefix(upto);
    Expect(Do("compact", {acked_, after}, after, [&] { return live_.log->CompactPrefix(upto); }));
  }

  void Expect(const absl::Status& s) {
    if (!s.ok()) Fail("operation failed: " + s.ToString());
  }

  const uint64_t seed_;
  const double evict_;
  std::mt19937_64 rng_;
  SimLog live_;
  LogModel acked_;
  std::vector<LogModel> allowed_ = {LogModel{}};
  std::string op_ = "none";
  int step_ = 0;
  uint64_t term_ = 1;
  uint64_t checks_ = 0;
  uint64_t restarts_ = 0;
  uint64_t restart_event_ = 0;
  std::vector<uint8_t> restart_image_;
  std::vector<LogModel> restart_allowed_;  // The allowed states when it was taken.
  bool failed_ = false;
};

class LogCrashTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(LogCrashTest, EveryEventOfARandomHistoryRecoversToAnAllowedState) {
  CrashRun run(GetParam());
  run.Run();
  EXPECT_FALSE(run.failed());
  EXPECT_GE(run.restarts(), 3u);
  std::printf("seed=%lu: %lu crash images recovered and checked, %lu restarts\n",
              static_cast<unsigned long>(GetParam()), static_cast<unsigned long>(run.checks()),
              static_cast<unsigned long>(run.restarts()));
}

INSTANTIATE_TEST_SUITE_P(Seeds, LogCrashTest, ::testing::Range<uint64_t>(1, 33));

}  // namespace
}  // namespace blizzard::pmemlog
