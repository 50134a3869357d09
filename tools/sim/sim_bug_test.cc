// The simulator catches planted bugs: each is injected through a test-only
// option, and some seed must fail, with a check that names the symptom.
// Seeds are tried in order until one fails (bounded), so the test also
// prints how many seeds each bug needed.
#include <cstdint>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "tools/sim/simulator.h"

namespace blizzard::sim {
namespace {

struct Caught {
  bool found = false;
  uint64_t seed = 0;
  std::string check;
  std::string summary;
};

Caught FirstFailure(const std::function<void(SimulatorOptions&)>& plant, uint64_t seeds_max,
                    int64_t steps = 8000) {
  for (uint64_t seed = 1; seed <= seeds_max; ++seed) {
    SimulatorOptions base;
    base.steps = steps;
    SimulatorOptions o = SwarmOptions(seed, base);
    plant(o);
    const SimulationResult r = RunSimulation(o);
    if (!r.ok) return Caught{true, seed, r.check, r.Summary()};
  }
  return Caught{};
}

void Expect(const Caught& c, const std::set<std::string>& checks) {
  ASSERT_TRUE(c.found) << "the planted bug went unnoticed";
  std::printf("caught at %s\n", c.summary.c_str());
  EXPECT_TRUE(checks.contains(c.check)) << c.summary;
}

TEST(SimBugTest, SendBeforePersistIsCaughtByTheContractCheck) {
  Expect(FirstFailure([](SimulatorOptions& o) { o.bugs.driver.send_before_persist = true; }, 5),
         {"persist-before-send"});
}

// Without the direct check, only the consequences remain: a vote or an
// acknowledged entry forgotten across a crash.
TEST(SimBugTest, SendBeforePersistIsCaughtByItsConsequences) {
  Expect(FirstFailure(
             [](SimulatorOptions& o) {
               o.bugs.driver.send_before_persist = true;
               o.check_persist_before_send = false;
             },
             400),
         {"vote-durability", "double-vote", "election-safety", "leader-completeness",
          "state-machine-safety", "acknowledged-write-lost", "linearizability", "log-matching",
          "restart",
          // A follower that acknowledged entries and lost them in a crash
          // never gets them again: the leader believes it has them.
          "liveness"});
}

TEST(SimBugTest, VolatileSessionTableIsCaught) {
  Expect(FirstFailure([](SimulatorOptions& o) { o.bugs.volatile_sessions = true; }, 400),
         {"exactly-once", "state-hash", "session-table", "linearizability"});
}

TEST(SimBugTest, MissingDeduplicationIsCaught) {
  Expect(FirstFailure([](SimulatorOptions& o) { o.bugs.no_dedup = true; }, 100),
         {"exactly-once", "linearizability"});
}

// The fault weights in FaultAction order: crash, power-loss, partition,
// cut-link, isolate, pause, heal, transfer-leadership, membership-change.
void Weights(SimulatorOptions& o, std::initializer_list<int> weights) {
  int i = 0;
  for (int w : weights) o.faults.weights[i++] = w;
}

// A stale read needs a deposed leader that still believes it leads: a
// partition-heavy profile on one key finds one within a few seeds.
TEST(SimBugTest, ReadsWithoutReadIndexAreCaught) {
  Expect(FirstFailure(
             [](SimulatorOptions& o) {
               o.bugs.driver.reads_without_read_index = true;
               o.keys = 1;
               Weights(o, {0, 0, 3, 1, 3, 2, 1, 0, 0});
             },
             200),
         {"linearizability"});
}

// Not a planted bug but today's node/log_storage.cc order (README finding
// 1): entries persisted before the term they belong to. The window is a few
// persistence events wide, so the profile aims at it: crash points only,
// frequent elections (partitions, isolation), 7 nodes (more followers that
// learn a new term from its leader's first append).
TEST(SimBugTest, EntriesBeforeTermIsCaught) {
  Expect(FirstFailure(
             [](SimulatorOptions& o) {
               o.entries_before_term = true;
               o.nodes = 7;
               o.spare_nodes = 0;
               o.faults.crash_point_probability = 1.0;
               o.faults.nemesis_interval_us_mean = 10'000;
               Weights(o, {4, 0, 3, 1, 3, 0, 1, 0, 0});
             },
             600),
         {"restart"});
}

}  // namespace
}  // namespace blizzard::sim
