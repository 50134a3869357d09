// Helpers shared by pmemlog's tests: deterministic entries, simulated
// regions holding a formatted log, and per-test directories in /dev/shm.
#ifndef BLIZZARD_PMEMLOG_TEST_UTIL_H_
#define BLIZZARD_PMEMLOG_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "pmemlog/log_core.h"
#include "pmemlog/log_types.h"
#include "pmemlog/sim_persistence.h"

namespace blizzard::pmemlog::testing {

// Entry `index` with a payload of `payload_bytes` derived from (index, term,
// salt), so content checks catch misplaced or stale bytes.
LogEntry MakeEntry(uint64_t index, uint64_t term, uint64_t payload_bytes, uint64_t salt = 0);
std::vector<LogEntry> MakeBatch(uint64_t first_index, uint64_t count, uint64_t term,
                                uint64_t payload_bytes, uint64_t salt = 0);

// A simulated region: meta block at 0, ring right after it.
inline constexpr uint64_t kSimMetaOffset = 0;
inline constexpr uint64_t kSimRingOffset = 256;
inline constexpr Identity kSimIdentity{7, 3};

RegionLayout SimLayout(uint64_t ring_bytes);
uint64_t SimRegionBytes(uint64_t ring_bytes);
// A region of `ring_bytes` ring holding a freshly formatted, empty log.
std::unique_ptr<SimPersistence> FormattedSim(uint64_t ring_bytes, uint64_t seed = 1,
                                             double evict_probability = 0.0);

// Success if `status` has `code` and its message contains `needle`.
::testing::AssertionResult ErrorIs(const absl::Status& status, absl::StatusCode code,
                                   const std::string& needle);

// A log core over a simulated region (the region outlives the core).
struct SimLog {
  std::unique_ptr<SimPersistence> sim;
  std::unique_ptr<LogCore> log;
};
// A new, empty log.
SimLog NewSimLog(uint64_t ring_bytes, uint64_t seed = 1, double evict_probability = 0.0);
// Recovers the log in `image` (a crash image of a region with `ring_bytes`).
absl::StatusOr<SimLog> OpenSimImage(const std::vector<uint8_t>& image, uint64_t ring_bytes,
                                    uint64_t seed = 1, double evict_probability = 0.0);

// What a log should hold: entries [first_index, first_index + size) and the
// term of the entry before them, plus the hard state.
struct LogModel {
  uint64_t first_index = 1;
  uint64_t prev_term = 0;
  std::vector<LogEntry> entries;
  HardState hard_state;

  uint64_t LastIndex() const { return first_index + entries.size() - 1; }
  uint64_t TermAt(uint64_t index) const {
    return index + 1 == first_index ? prev_term : entries[index - first_index].term;
  }
  // The operations, with PmemLog's semantics (arguments assumed valid).
  void Append(const std::vector<LogEntry>& batch);
  void TruncateSuffix(uint64_t from);
  void CompactPrefix(uint64_t upto);
  void Reset(uint64_t snapshot_index, uint64_t snapshot_term);
};

// "" if `log` (a LogCore or a PmemLog) holds exactly `model`, else the first
// difference.
template <typename Log>
std::string DiffLog(const Log& log, const LogModel& model) {
  if (log.FirstIndex() != model.first_index || log.LastIndex() != model.LastIndex()) {
    return absl::StrFormat("range [%d, %d], expected [%d, %d]", log.FirstIndex(), log.LastIndex(),
                           model.first_index, model.LastIndex());
  }
  if (!(log.GetHardState() == model.hard_state)) {
    const HardState hs = log.GetHardState();
    return absl::StrFormat("hard state {%d %d %d}, expected {%d %d %d}", hs.term, hs.vote,
                           hs.commit, model.hard_state.term, model.hard_state.vote,
                           model.hard_state.commit);
  }
  const absl::StatusOr<uint64_t> prev = log.TermAt(model.first_index - 1);
  if (!prev.ok() || *prev != model.prev_term) {
    return absl::StrFormat("term of %d is wrong", model.first_index - 1);
  }
  for (const LogEntry& want : model.entries) {
    const absl::StatusOr<uint64_t> term = log.TermAt(want.index);
    const absl::StatusOr<LogEntry> got = log.Read(want.index);
    if (!got.ok()) return std::string(got.status().message());
    if (!term.ok() || *term != want.term || !(*got == want)) {
      return absl::StrFormat("entry %d differs", want.index);
    }
  }
  return "";
}

// A directory /dev/shm/pmemlog_<pid>_<name>, created empty and removed with
// everything in it when the object dies.
class ShmDir {
 public:
  explicit ShmDir(const std::string& name);
  ~ShmDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// XORs `mask` into the byte at `offset` of the file at `path`.
void FlipFileByte(const std::string& path, uint64_t offset, uint8_t mask);

}  // namespace blizzard::pmemlog::testing

#endif  // BLIZZARD_PMEMLOG_TEST_UTIL_H_
