// A simulated client: a closed loop of random operations over a small key
// set, with a session (its id) and one sequence number per request.
//
// One request is outstanding at a time. A request is retried with the SAME
// seq (so the session table can deduplicate it): at the leader named by a
// "not leader" reply, or, after a timeout or an "outcome unknown" reply, at
// the next node. After attempts_max sends the client gives up and records
// the operation's outcome as unknown, then moves on to a new seq.
//
// Everything it saw goes into a history for the linearizability checker
// (call time = first send, return time = the answer's arrival).
#ifndef BLIZZARD_TOOLS_SIM_SIM_CLIENT_H_
#define BLIZZARD_TOOLS_SIM_SIM_CLIENT_H_

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tools/lincheck/lincheck.h"
#include "tools/sim/command.h"
#include "tools/sim/trace.h"
#include "transport/sim/splitmix64.h"
#include "transport/transport.h"

namespace blizzard::sim {

inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

struct OpMix {
  int get = 30;
  int put = 20;
  int append = 20;
  int del = 10;
  int cas = 20;
};

struct ClientOptions {
  uint64_t id = 0;                      // Session id and network id.
  std::vector<uint64_t> nodes;          // Node ids to talk to.
  int keys = 4;                         // Keys "k0".."k<keys-1>".
  int64_t timeout_us = 30'000;          // Per attempt.
  int attempts_max = 10;                // Sends per operation.
  int64_t think_us_max = 2'000;         // Pause between operations.
  // Before a retry without a leader hint (about an election's length).
  int64_t retry_backoff_us = 5'000;
  OpMix mix;
};

struct ClientStats {
  uint64_t ops_ok = 0;
  uint64_t ops_unknown = 0;  // Gave up.
  uint64_t sends = 0;
  uint64_t timeouts = 0;
  uint64_t redirects = 0;
  uint64_t unknown_replies = 0;
};

class SimClient {
 public:
  SimClient(const ClientOptions& options, uint64_t seed, transport::Transport* endpoint,
            Trace* trace);

  // Takes in replies and handles timeouts at `now_us`; when idle, its think
  // time is over and `issue` is true, starts a new operation.
  void Step(int64_t now_us, bool issue);
  // When Step next has something to do without a reply arriving.
  int64_t NextWakeUs() const;
  bool busy() const { return current_.has_value(); }

  const std::vector<lincheck::Operation>& history() const { return history_; }
  // The seq of each history entry (same positions).
  const std::vector<uint64_t>& history_seqs() const { return history_seqs_; }
  // Writes answered OK: (client, seq).
  const std::vector<std::pair<uint64_t, uint64_t>>& acked_writes() const { return acked_; }
  const ClientStats& stats() const { return stats_; }
  // Set when a node answered something impossible for this client (a
  // session table ahead of it).
  const std::optional<std::string>& failure() const { return failure_; }
  uint64_t id() const { return options_.id; }

 private:
  struct Outstanding {
    Command command;
    size_t history_index = 0;
    int attempts = 0;
    uint64_t target = 0;
    int64_t deadline_us = 0;   // Timeout of the attempt in flight.
    int64_t resend_at_us = kNever;  // A retry waiting for its back-off.
  };

  Command NextCommand();
  void Send(int64_t now_us);
  void OnReply(int64_t now_us, const Reply& reply);
  // Retries the current operation at `target`, after `delay_us`, or gives up.
  void Retry(int64_t now_us, uint64_t target, int64_t delay_us);
  void Finish(int64_t now_us, bool known, const CommandResult& result);
  uint64_t NextNode(uint64_t after) const;

  const ClientOptions options_;
  transport::SplitMix64 random_;
  transport::Transport* const endpoint_;
  Trace* const trace_;
  uint64_t next_seq_ = 1;
  uint64_t preferred_ = 0;  // Last known leader.
  int64_t next_issue_us_ = 0;
  std::optional<Outstanding> current_;
  std::map<std::string, std::optional<std::string>> last_seen_;  // For cas.
  std::vector<lincheck::Operation> history_;
  std::vector<uint64_t> history_seqs_;
  std::vector<std::pair<uint64_t, uint64_t>> acked_;
  ClientStats stats_;
  std::optional<std::string> failure_;
};

}  // namespace blizzard::sim

#endif  // BLIZZARD_TOOLS_SIM_SIM_CLIENT_H_
