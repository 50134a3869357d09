// The deterministic cluster simulator (issue 4; in the spirit of
// TigerBeetle's VOPR): N nodes running the real Raft (consensus/), the real
// log (pmemlog's LogCore over simulated persistent memory) and a driver that
// mirrors node/server.cc, plus clients with sessions, on a simulated network
// and clock, with faults drawn from one seed. Every step is checked
// (safety_checker.h); at the end the faults stop, the cluster must converge,
// and the clients' history must be linearizable.
//
// Time: an integer microsecond clock that jumps from event to event (a
// message delivery, a node's tick, a client's timer, a fault). One step is
// one such instant: faults due, then every live node runs one loop
// iteration, then every client.
//
// Randomness: one SplitMix64 seeded with `seed` hands out the seed of every
// component (network, nemesis, each node's Raft and persistent memory per
// incarnation, each client), so the same seed replays the same run exactly:
// the trace hash proves it.
#ifndef BLIZZARD_TOOLS_SIM_SIMULATOR_H_
#define BLIZZARD_TOOLS_SIM_SIMULATOR_H_

#include <cstdint>
#include <cstdio>
#include <string>

#include "tools/sim/node_driver.h"
#include "tools/sim/sim_client.h"

namespace blizzard::sim {

// The nemesis's actions. Adding one means: a value here, a weight in
// FaultOptions, a case in Simulator::Nemesis (simulator.cc).
enum class FaultAction : uint8_t {
  kCrash,      // One node loses power: now, or at a crash point a few events on.
  kPowerLoss,  // Every node loses power at once.
  kPartition,  // A random two-way split, healed later.
  kCutLink,    // One directed link (asymmetric), healed later.
  kIsolate,    // One node cut from everyone, clients included, for a while.
  kPause,      // One node stops running for a while (a stall), then resumes.
  kHeal,       // Every link heals.
  kTransferLeadership,  // The leader hands leadership to a random voter.
  kMembershipChange,    // Add a learner, promote a caught-up one, or remove a voter.
  kActionCount,
};
const char* FaultActionName(FaultAction action);

struct FaultOptions {
  // The network (transport::SimOptions), for the whole run.
  double drop_probability = 0.02;
  double duplicate_probability = 0.02;
  double reorder_probability = 0.05;
  int64_t delay_us_min = 100;  // >= 1: nothing arrives in the instant it left.
  int64_t delay_us_max = 1'500;
  int64_t reorder_delay_us_max = 5'000;
  // The nemesis acts every Uniform[0, 2 * mean] microseconds; 0: never.
  int64_t nemesis_interval_us_mean = 30'000;
  int weights[static_cast<int>(FaultAction::kActionCount)] = {3, 1, 2, 2, 1, 1, 3, 1, 1};
  // A crash takes a torn image (random unpersisted words survive) with this
  // probability, else a persisted-only one.
  double torn_probability = 0.5;
  // A crash happens at a random event (store, flush, fence, send, apply)
  // among the node's next crash_point_events_max with this probability,
  // else between two loop iterations.
  double crash_point_probability = 0.7;
  uint64_t crash_point_events_max = 64;
  // SimPersistence's cache evictions (an older unpersisted value of a word
  // may reach the media first).
  double evict_probability = 0.05;
  // How long a crashed node stays down, a partition / cut link / isolation
  // lasts, a pause lasts: Uniform[1, max].
  int64_t down_us_max = 200'000;
  int64_t partition_us_max = 300'000;
  int64_t pause_us_max = 50'000;
  // Each node's clock runs at (1 + skew) times the nominal rate, skew drawn
  // per incarnation from [-clock_drift, clock_drift].
  double clock_drift = 0.01;
};

// Planted bugs: the simulator must catch each (sim_bug_test).
struct BugOptions {
  DriverBugs driver;
  bool volatile_sessions = false;  // Session table not in the durable image.
  bool no_dedup = false;           // No duplicate detection at all.
};

struct SimulatorOptions {
  uint64_t seed = 1;
  int nodes = 3;    // The initial voters, ids 1..nodes.
  // Nodes that start outside the group (ids nodes+1..nodes+spare_nodes),
  // for membership changes to add. nodes + spare_nodes <= 7.
  int spare_nodes = 0;
  int clients = 4;  // 1..64.
  int keys = 4;
  int64_t steps = 20'000;  // Instants of the faulty phase.
  int64_t tick_us = 1'000;
  int election_timeout_ticks = 10;
  int heartbeat_interval_ticks = 2;
  int64_t client_timeout_us = 30'000;
  int client_attempts_max = 10;
  int64_t client_think_us_max = 2'000;
  OpMix mix;
  uint64_t log_ring_bytes = 1u << 20;
  // Snapshots and log compaction (DriverOptions): every this many applied
  // entries (0: never), keeping this many entries below the snapshot.
  uint64_t compact_every_entries = 0;
  uint64_t compact_keep_entries = 0;
  // Raft's leader lease reads (Config.lease_reads); the driver then ticks
  // before stepping messages and catches up every missed tick.
  bool lease_reads = false;
  // With lease_reads: keep node/server.cc's clock handling instead (ticks
  // after the peers' messages, at most 16 per iteration after a stall),
  // which does not meet the lease's clock assumption: for whoever turns
  // leases on in node/ (README.md, "Lease reads").
  bool lease_with_server_clock = false;
  // After the faulty phase: simulated time allowed to converge.
  int64_t converge_us_max = 20'000'000;
  FaultOptions faults;
  BugOptions bugs;
  // Persist entries before the new term, as node/log_storage.cc does today
  // (see SimLogOptions::entries_before_term): reproduces finding 1 of
  // README.md. Off: the term first.
  bool entries_before_term = false;
  // The direct contract check (see safety_checker.h); off, planted bugs must
  // be caught through their consequences.
  bool check_persist_before_send = true;
  // Print every event here (null: only hash them).
  std::FILE* trace_out = nullptr;
};

// InvalidArgument naming the first bad option.
absl::Status ValidateSimulatorOptions(const SimulatorOptions& options);

// "Swarm testing": cluster size, clients, keys, network faults and the
// nemesis's profile drawn from the seed, so many seeds explore many kinds
// of runs. Everything else is taken from `base`.
SimulatorOptions SwarmOptions(uint64_t seed, const SimulatorOptions& base = {});

struct SimulationStats {
  int64_t steps = 0;
  int64_t sim_us = 0;
  int64_t converge_steps = 0;
  uint64_t terms_with_leader = 0;
  uint64_t entries_committed = 0;
  uint64_t ops_ok = 0;
  uint64_t ops_unknown = 0;
  uint64_t crashes = 0;
  uint64_t torn_crashes = 0;
  uint64_t crash_points = 0;  // Crashes in the middle of an iteration.
  uint64_t restarts = 0;
  uint64_t fault_actions = 0;
  uint64_t messages_sent = 0;
  uint64_t messages_delivered = 0;
  uint64_t commands_deduplicated = 0;
  uint64_t snapshots_installed = 0;
  uint64_t compactions = 0;
  uint64_t membership_changes = 0;  // Proposed and accepted by a leader.
  uint64_t transfers = 0;           // Leadership transfers started.
  // Linearizability: unknown-outcome writes that never took effect (dropped
  // from the history), and runs whose search needed the executed unknown
  // writes resolved (see CheckHistory in simulator.cc).
  uint64_t unknown_never_applied = 0;
  uint64_t lincheck_resolved = 0;
};

struct SimulationResult {
  uint64_t seed = 0;
  bool ok = true;
  std::string check;   // The failing check's name.
  std::string detail;  // What it saw.
  uint64_t trace_hash = 0;
  SimulationStats stats;
  // "seed=N ok ..." or "seed=N FAILED check=<check>: <detail>".
  std::string Summary() const;
};

// Runs one simulation. Never crashes on a violation: it is returned.
SimulationResult RunSimulation(const SimulatorOptions& options);

}  // namespace blizzard::sim

#endif  // BLIZZARD_TOOLS_SIM_SIMULATOR_H_
