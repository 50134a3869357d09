#include "tools/lincheck/lincheck.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/internal/raw_logging.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace blizzard::lincheck {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

using State = std::optional<std::string>;  // The key's value; nullopt = absent.

// Applies `op` to `state`: false if the op's observed outcome is impossible
// from `state`, else the next state in `next`.
bool Step(const Operation& op, const State& state, State* next) {
  switch (op.kind) {
    case OpKind::kGet:
      *next = state;
      return op.output_value == state;
    case OpKind::kPut:
      *next = op.value;
      return true;
    case OpKind::kAppend:
      *next = state.value_or("") + op.value;
      return true;
    case OpKind::kDelete:
      *next = std::nullopt;
      return !op.known || op.output_ok == state.has_value();
    case OpKind::kCas: {
      const bool matches = state == op.expected;
      *next = matches ? State(op.value) : state;
      return !op.known || op.output_ok == matches;
    }
  }
  return false;
}

// A fixed-size bitset of linearized operations.
class Bits {
 public:
  explicit Bits(size_t n) : words_((n + 63) / 64, 0) {}
  void Set(size_t i) { words_[i / 64] |= uint64_t{1} << (i % 64); }
  void Clear(size_t i) { words_[i / 64] &= ~(uint64_t{1} << (i % 64)); }
  bool operator==(const Bits&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const Bits& b) {
    return H::combine(std::move(h), b.words_);
  }

 private:
  std::vector<uint64_t> words_;
};

struct CacheEntry {
  Bits linearized;
  State state;
  bool operator==(const CacheEntry&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const CacheEntry& e) {
    return H::combine(std::move(h), e.linearized, e.state);
  }
};

// The event list of Wing & Gong's algorithm: calls and returns in time
// order, doubly linked so a linearized operation's pair can be lifted out
// and put back in O(1).
struct Event {
  bool is_call = false;
  size_t op = 0;
  size_t match = 0;  // For a call: its return event.
  size_t prev = 0, next = 0;
};

class KeyChecker {
 public:
  KeyChecker(std::vector<const Operation*> ops, uint64_t steps_max)
      : ops_(std::move(ops)), steps_max_(steps_max) {}

  // OK(true/false), or DeadlineExceeded.
  absl::StatusOr<bool> Run() {
    const size_t n = ops_.size();
    if (n == 0) return true;
    // Events: index 0 is the list head sentinel; then 2n events.
    struct Stamp {
      int64_t time;
      bool is_call;
      size_t op;
    };
    std::vector<Stamp> stamps;
    stamps.reserve(2 * n);
    for (size_t i = 0; i < n; ++i) {
      const Operation& op = *ops_[i];
      stamps.push_back({op.call_time, true, i});
      stamps.push_back({op.known ? op.return_time : kNever, false, i});
    }
    // Calls before returns at equal times: such operations count as
    // concurrent, which never makes a good history look bad.
    std::stable_sort(stamps.begin(), stamps.end(), [](const Stamp& a, const Stamp& b) {
      if (a.time != b.time) return a.time < b.time;
      return a.is_call && !b.is_call;
    });
    events_.assign(2 * n + 1, Event{});
    std::vector<size_t> call_of(n), return_of(n);
    for (size_t i = 0; i < stamps.size(); ++i) {
      Event& e = events_[i + 1];
      e.is_call = stamps[i].is_call;
      e.op = stamps[i].op;
      (e.is_call ? call_of : return_of)[e.op] = i + 1;
    }
    for (size_t i = 0; i < events_.size(); ++i) {
      events_[i].prev = i == 0 ? kEnd : i - 1;
      events_[i].next = i + 1 < events_.size() ? i + 1 : kEnd;
    }
    for (size_t i = 0; i < n; ++i) events_[call_of[i]].match = return_of[i];

    Bits linearized(n);
    State state;  // Every key starts absent.
    absl::flat_hash_set<CacheEntry> cache;
    struct Frame {
      size_t call;
      State state;
    };
    std::vector<Frame> stack;
    size_t entry = events_[0].next;
    uint64_t steps = 0;
    while (events_[0].next != kEnd) {
      if (++steps > steps_max_) {
        return absl::DeadlineExceededError(
            absl::StrCat("search exceeded ", steps_max_, " steps"));
      }
      ABSL_RAW_CHECK(entry != kEnd, "walked off the event list");
      const Event& e = events_[entry];
      if (e.is_call) {
        State next;
        if (Step(*ops_[e.op], state, &next)) {
          Bits after = linearized;
          after.Set(e.op);
          if (cache.insert(CacheEntry{after, next}).second) {
            stack.push_back(Frame{entry, state});
            state = std::move(next);
            linearized = std::move(after);
            Lift(entry);
            entry = events_[0].next;
            continue;
          }
        }
        entry = e.next;
      } else {
        // A return whose call is not linearized yet: backtrack.
        if (stack.empty()) return false;
        Frame f = std::move(stack.back());
        stack.pop_back();
        state = std::move(f.state);
        linearized.Clear(events_[f.call].op);
        Unlift(f.call);
        entry = events_[f.call].next;
      }
    }
    return true;
  }

 private:
  static constexpr size_t kEnd = std::numeric_limits<size_t>::max();

  void Remove(size_t i) {
    Event& e = events_[i];
    events_[e.prev].next = e.next;
    if (e.next != kEnd) events_[e.next].prev = e.prev;
  }
  void Restore(size_t i) {
    Event& e = events_[i];
    events_[e.prev].next = i;
    if (e.next != kEnd) events_[e.next].prev = i;
  }
  // Removes a call, then its return; Unlift restores them in the reverse
  // order, so the links come back exactly.
  void Lift(size_t call) {
    Remove(call);
    Remove(events_[call].match);
  }
  void Unlift(size_t call) {
    Restore(events_[call].match);
    Restore(call);
  }

  std::vector<const Operation*> ops_;
  uint64_t steps_max_;
  std::vector<Event> events_;
};

absl::Status Validate(const Operation& op) {
  if (op.known && op.return_time < op.call_time) {
    return absl::InvalidArgumentError(
        absl::StrCat("operation returns before it is called: ", DescribeOperation(op)));
  }
  return absl::OkStatus();
}

const char* KindName(OpKind k) {
  switch (k) {
    case OpKind::kGet:
      return "get";
    case OpKind::kPut:
      return "put";
    case OpKind::kAppend:
      return "append";
    case OpKind::kDelete:
      return "delete";
    case OpKind::kCas:
      return "cas";
  }
  return "?";
}

std::string Show(const std::optional<std::string>& v) {
  return v.has_value() ? absl::StrCat("\"", *v, "\"") : "nil";
}

}  // namespace

std::string DescribeOperation(const Operation& op) {
  std::string s = absl::StrFormat("client %d %s(%s", op.client, KindName(op.kind), op.key);
  if (op.kind == OpKind::kPut || op.kind == OpKind::kAppend) {
    absl::StrAppend(&s, ", \"", op.value, "\"");
  } else if (op.kind == OpKind::kCas) {
    absl::StrAppend(&s, ", ", Show(op.expected), " -> \"", op.value, "\"");
  }
  absl::StrAppend(&s, ")");
  if (!op.known) {
    absl::StrAppend(&s, " -> unknown  [", op.call_time, ", never]");
    return s;
  }
  if (op.kind == OpKind::kGet) {
    absl::StrAppend(&s, " -> ", Show(op.output_value));
  } else if (op.kind == OpKind::kDelete || op.kind == OpKind::kCas) {
    absl::StrAppend(&s, " -> ", op.output_ok ? "true" : "false");
  } else {
    absl::StrAppend(&s, " -> ok");
  }
  absl::StrAppend(&s, "  [", op.call_time, ", ", op.return_time, "]");
  return s;
}

absl::StatusOr<CheckResult> CheckHistory(absl::Span<const Operation> history,
                                         const CheckOptions& options) {
  std::map<std::string, std::vector<const Operation*>> by_key;
  for (const Operation& op : history) {
    if (absl::Status s = Validate(op); !s.ok()) return s;
    if (op.kind == OpKind::kGet && !op.known) continue;  // Constrains nothing.
    by_key[op.key].push_back(&op);
  }
  for (auto& [key, ops] : by_key) {
    KeyChecker checker(ops, options.steps_per_key_max);
    absl::StatusOr<bool> ok = checker.Run();
    if (!ok.ok()) {
      return absl::Status(ok.status().code(),
                          absl::StrCat("key \"", key, "\": ", ok.status().message()));
    }
    if (!*ok) {
      CheckResult r;
      r.linearizable = false;
      r.key = key;
      std::vector<const Operation*> sorted = ops;
      std::stable_sort(sorted.begin(), sorted.end(),
                       [](const Operation* a, const Operation* b) {
                         return a->call_time < b->call_time;
                       });
      r.explanation = absl::StrCat("no linearization of the ", sorted.size(),
                                   " operations on key \"", key, "\":\n");
      for (size_t i = 0; i < sorted.size() && i < 50; ++i) {
        absl::StrAppend(&r.explanation, "  ", DescribeOperation(*sorted[i]), "\n");
      }
      return r;
    }
  }
  return CheckResult{};
}

}  // namespace blizzard::lincheck
