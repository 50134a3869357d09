// A linearizability checker for key-value histories.
//
// A history is what clients saw: each operation's invocation and response
// times and its outcome. The checker decides whether some total order of
// the operations (a) respects real time (an operation that returned before
// another was invoked comes first) and (b) is a legal sequential execution
// of a key-value map. It follows Wing & Gong's search with Lowe's
// memoization (as Porcupine does), and checks each key separately: single-key
// operations on different keys commute, so a history is linearizable iff
// each key's sub-history is (P-compositionality).
//
// Operations whose outcome is unknown (the client timed out, or was told
// "outcome unknown") have no response time: they may take effect at any
// point after their invocation, or never. A read with an unknown outcome
// constrains nothing and is ignored.
#ifndef BLIZZARD_TOOLS_LINCHECK_LINCHECK_H_
#define BLIZZARD_TOOLS_LINCHECK_LINCHECK_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace blizzard::lincheck {

enum class OpKind : uint8_t {
  kGet,     // output: value, or nullopt for "no such key"
  kPut,     // value
  kAppend,  // value (appended; a missing key starts empty)
  kDelete,  // output_ok: whether the key existed (when known)
  kCas,     // expected (nullopt: "key absent"), value; output_ok: swapped
};

struct Operation {
  uint64_t client = 0;
  OpKind kind = OpKind::kGet;
  std::string key;
  std::string value;                    // kPut, kAppend, kCas (new value)
  std::optional<std::string> expected;  // kCas
  // The outcome. `known` false: the client never learned it.
  bool known = true;
  std::optional<std::string> output_value;  // kGet
  bool output_ok = true;                    // kDelete, kCas
  int64_t call_time = 0;
  int64_t return_time = 0;  // Ignored when !known.
};

struct CheckOptions {
  // Search steps allowed per key before giving up (an exponential search
  // on pathological histories must not hang a test).
  uint64_t steps_per_key_max = 50'000'000;
};

struct CheckResult {
  bool linearizable = true;
  std::string key;          // The first key found not linearizable.
  std::string explanation;  // Human-readable: the key's operations.
};

// InvalidArgument for a malformed history (return before call, a kCas
// without value...); DeadlineExceeded when a key's search exceeds its step
// budget (the history is neither proven good nor bad).
absl::StatusOr<CheckResult> CheckHistory(absl::Span<const Operation> history,
                                         const CheckOptions& options = {});

// One line per operation, for failure reports.
std::string DescribeOperation(const Operation& op);

}  // namespace blizzard::lincheck

#endif  // BLIZZARD_TOOLS_LINCHECK_LINCHECK_H_
