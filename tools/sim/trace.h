// The simulator's trace: every message, state change, crash, partition and
// client operation, as a running hash (always: two runs of one seed must
// end with the same hash) and, when asked, as readable lines.
//
// Call sites pass the event's deciding fields as integers (hashed) and a
// callback that formats it (only called when printing), so tracing costs
// a hash per event when nobody reads it.
#ifndef BLIZZARD_TOOLS_SIM_TRACE_H_
#define BLIZZARD_TOOLS_SIM_TRACE_H_

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"

namespace blizzard::sim {

class Trace {
 public:
  // `out` null: hash only.
  explicit Trace(std::FILE* out = nullptr) : out_(out) {}

  bool verbose() const { return out_ != nullptr; }
  void Event(int64_t now_us, absl::string_view kind, std::initializer_list<uint64_t> fields,
             absl::FunctionRef<std::string()> describe);
  // A line that is printed but not hashed (headers, summaries).
  void Note(absl::string_view text);

  uint64_t hash() const { return hash_; }
  uint64_t events() const { return events_; }

 private:
  std::FILE* out_;
  uint64_t hash_ = 0x9e3779b97f4a7c15ull;
  uint64_t events_ = 0;
};

}  // namespace blizzard::sim

#endif  // BLIZZARD_TOOLS_SIM_TRACE_H_
