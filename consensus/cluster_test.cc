// Whole-cluster scenarios on the deterministic in-memory cluster
// (consensus/testing/cluster.h), which checks election safety, state machine
// safety, leader completeness and read safety on every step.
#include <algorithm>
#include <iostream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "consensus/testing/cluster.h"
#include "gtest/gtest.h"

namespace blizzard::consensus {
namespace {

using testing::Cluster;
using testing::ClusterOptions;

ClusterOptions Options(int nodes, uint64_t seed) {
  ClusterOptions o;
  o.nodes = nodes;
  o.seed = seed;
  o.config.election_timeout_ticks = 10;
  o.config.heartbeat_interval_ticks = 1;
  return o;
}

// A log whose entry i + 1 has terms[i].
std::vector<Entry> LogOfTerms(const std::vector<Term>& terms) {
  std::vector<Entry> log;
  for (size_t i = 0; i < terms.size(); ++i) {
    log.push_back(Entry{terms[i], i + 1, EntryType::kNormal,
                        absl::StrCat("t", terms[i], "i", i + 1)});
  }
  return log;
}

// Everything the cluster checks continuously, plus log matching.
void ExpectSafe(Cluster& c) {
  c.CheckLogMatching();
  EXPECT_TRUE(c.violations().empty())
      << absl::StrJoin(c.violations(), "\n") << "\n" << c.Describe();
  EXPECT_TRUE(c.step_errors().empty())
      << absl::StrJoin(c.step_errors(), "\n") << "\n" << c.Describe();
}

std::vector<std::string> AppliedData(const Cluster& c, NodeId id) {
  std::vector<std::string> out;
  for (const Entry& e : c.applied(id)) {
    if (e.type == EntryType::kNormal) out.push_back(e.data);
  }
  return out;
}

int CountLeaders(Cluster& c) {
  int leaders = 0;
  for (NodeId id : c.ids()) {
    if (c.IsUp(id) && c.node(id).role() == Role::kLeader) ++leaders;
  }
  return leaders;
}

TEST(ClusterTest, ElectsExactlyOneLeader) {
  for (int nodes : {1, 3, 5}) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      SCOPED_TRACE(absl::StrCat("nodes=", nodes, " seed=", seed));
      Cluster c(Options(nodes, seed));
      std::optional<NodeId> leader = c.WaitForLeader(100);
      ASSERT_TRUE(leader.has_value()) << c.Describe();
      c.Stabilize();
      c.RunTicks(30);
      EXPECT_EQ(CountLeaders(c), 1) << c.Describe();
      const Term term = c.node(*leader).term();
      for (NodeId id : c.ids()) {
        EXPECT_EQ(c.node(id).leader(), *leader) << c.Describe();
        EXPECT_EQ(c.node(id).term(), term) << c.Describe();
      }
      ExpectSafe(c);
    }
  }
}

TEST(ClusterTest, ReplicatesAndCommitsManyProposalsOnAllNodes) {
  ClusterOptions o = Options(5, 7);
  o.config.inflight_appends_max = 4;
  o.config.append_bytes_max = 512;  // Several messages per burst.
  o.network.delay_ticks_max = 2;    // Reordering between ticks.
  Cluster c(o);
  std::optional<NodeId> leader = c.WaitForLeader(100);
  ASSERT_TRUE(leader.has_value());
  std::vector<std::string> proposed;
  for (int i = 0; i < 1000; ++i) {
    std::string data = absl::StrCat("op-", i);
    ASSERT_TRUE(c.Propose(*leader, data).ok()) << c.Describe();
    proposed.push_back(data);
    if (i % 10 == 0) c.Tick();
  }
  ASSERT_TRUE(c.WaitForApplied(c.node(*leader).last_index(), 200))
      << c.Describe();
  for (NodeId id : c.ids()) {
    EXPECT_EQ(AppliedData(c, id), proposed) << "node " << id;
  }
  // The leader never changed: one no-op, then the proposals.
  EXPECT_EQ(c.node(*leader).last_index(), proposed.size() + 1);
  ExpectSafe(c);
}

TEST(ClusterTest, LeaderCrashKeepsCommittedEntriesAndRestartCatchesUp) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed=", seed));
    Cluster c(Options(5, seed));
    std::optional<NodeId> old_leader = c.WaitForLeader(100);
    ASSERT_TRUE(old_leader.has_value());
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(c.Propose(*old_leader, absl::StrCat("a", i)).ok());
    }
    c.Stabilize();
    const Index committed = c.node(*old_leader).commit_index();
    ASSERT_EQ(committed, c.node(*old_leader).last_index());
    std::vector<std::string> before = AppliedData(c, *old_leader);
    ASSERT_EQ(before.size(), 50u);

    c.Crash(*old_leader);
    std::optional<NodeId> new_leader = c.WaitForLeader(200);
    ASSERT_TRUE(new_leader.has_value()) << c.Describe();
    ASSERT_NE(*new_leader, *old_leader);
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(c.Propose(*new_leader, absl::StrCat("b", i)).ok());
    }
    c.Stabilize();
    // Every committed entry survived the change of leader.
    std::vector<std::string> after = AppliedData(c, *new_leader);
    ASSERT_EQ(after.size(), 70u);
    EXPECT_TRUE(std::equal(before.begin(), before.end(), after.begin()));

    ASSERT_TRUE(c.Restart(*old_leader).ok());
    ASSERT_TRUE(c.WaitForApplied(c.node(*new_leader).last_index(), 200))
        << c.Describe();
    EXPECT_EQ(AppliedData(c, *old_leader), after);
    EXPECT_EQ(c.node(*old_leader).role(), Role::kFollower);
    ExpectSafe(c);
  }
}

TEST(ClusterTest, FullClusterRestartKeepsCommittedEntries) {
  Cluster c(Options(3, 3));
  std::optional<NodeId> leader = c.WaitForLeader(100);
  ASSERT_TRUE(leader.has_value());
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(c.Propose(*leader, absl::StrCat(i)).ok());
  c.Stabilize();
  const std::vector<std::string> before = AppliedData(c, *leader);
  for (NodeId id : c.ids()) c.Crash(id);
  for (NodeId id : c.ids()) ASSERT_TRUE(c.Restart(id).ok());
  // Restarted nodes know their commit from the hard state and do not
  // re-apply what their state machine holds.
  for (NodeId id : c.ids()) {
    EXPECT_EQ(c.node(id).applied_index(), c.applied(id).size());
  }
  leader = c.WaitForLeader(200);
  ASSERT_TRUE(leader.has_value());
  ASSERT_TRUE(c.Propose(*leader, "after").ok());
  ASSERT_TRUE(c.WaitForApplied(c.node(*leader).last_index(), 200));
  std::vector<std::string> expected = before;
  expected.push_back("after");
  for (NodeId id : c.ids()) EXPECT_EQ(AppliedData(c, id), expected);
  ExpectSafe(c);
}

// The old leader, cut off with a minority, keeps accepting proposals; none
// may commit. After healing it steps down and its entries are replaced.
void RunPartitionedOldLeader(bool check_quorum, uint64_t seed) {
  ClusterOptions o = Options(5, seed);
  o.config.check_quorum = check_quorum;
  Cluster c(o);
  std::optional<NodeId> old_leader = c.WaitForLeader(100);
  ASSERT_TRUE(old_leader.has_value());
  ASSERT_TRUE(c.Propose(*old_leader, "before").ok());
  c.Stabilize();
  const Index commit_before = c.node(*old_leader).commit_index();

  // Old leader plus one follower against the other three.
  std::vector<NodeId> minority = {*old_leader};
  std::vector<NodeId> majority;
  for (NodeId id : c.ids()) {
    if (id == *old_leader) continue;
    (minority.size() < 2 ? minority : majority).push_back(id);
  }
  c.Partition({minority, majority});
  int stale_proposals = 0;
  for (int tick = 0; tick < 100; ++tick) {
    if (c.node(*old_leader).role() == Role::kLeader) {
      ASSERT_TRUE(c.Propose(*old_leader, absl::StrCat("stale", tick)).ok());
      ++stale_proposals;
    }
    c.Tick();
    ASSERT_EQ(c.node(*old_leader).commit_index(), commit_before)
        << c.Describe();
  }
  ASSERT_GT(stale_proposals, 0);
  if (check_quorum) {
    // It noticed it lost the quorum and stepped down on its own.
    EXPECT_NE(c.node(*old_leader).role(), Role::kLeader);
    EXPECT_LE(stale_proposals, 2 * o.config.election_timeout_ticks);
  } else {
    EXPECT_EQ(c.node(*old_leader).role(), Role::kLeader);
  }
  // The majority elected a new leader and commits.
  std::optional<NodeId> new_leader;
  for (NodeId id : majority) {
    if (c.node(id).role() == Role::kLeader) new_leader = id;
  }
  ASSERT_TRUE(new_leader.has_value()) << c.Describe();
  ASSERT_TRUE(c.Propose(*new_leader, "fresh").ok());
  c.RunTicks(5);
  EXPECT_GT(c.node(*new_leader).commit_index(), commit_before);

  c.Heal();
  ASSERT_TRUE(c.WaitForApplied(c.node(*new_leader).last_index(), 200))
      << c.Describe();
  EXPECT_EQ(c.node(*old_leader).role(), Role::kFollower);
  EXPECT_EQ(c.node(*old_leader).leader(), *new_leader);
  const std::vector<std::string> expected = {"before", "fresh"};
  for (NodeId id : c.ids()) EXPECT_EQ(AppliedData(c, id), expected);
  // The stale entries are gone from the old leader's log too.
  const MemoryStorage& s = c.storage(*old_leader);
  std::vector<Entry> log = *s.Entries(1, s.LastIndex() + 1, UINT64_MAX);
  for (const Entry& e : log) {
    EXPECT_EQ(e.data.rfind("stale", 0), std::string::npos) << e.index;
  }
  ExpectSafe(c);
}

TEST(ClusterTest, PartitionedOldLeaderNeverCommitsAndIsReplaced) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed=", seed));
    RunPartitionedOldLeader(/*check_quorum=*/false, seed);
  }
}

TEST(ClusterTest, PartitionedOldLeaderStepsDownWithCheckQuorum) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed=", seed));
    RunPartitionedOldLeader(/*check_quorum=*/true, seed);
  }
}

TEST(ClusterTest, ReadIndexOnLeaderAndNotOnDeposedLeader) {
  ClusterOptions o = Options(3, 11);
  o.config.check_quorum = false;  // Keep the deposed leader a leader.
  Cluster c(o);
  std::optional<NodeId> leader = c.WaitForLeader(100);
  ASSERT_TRUE(leader.has_value());
  ASSERT_TRUE(c.Propose(*leader, "x").ok());
  c.Stabilize();
  ASSERT_TRUE(c.ReadIndex(*leader, 42).ok());
  c.Stabilize();
  ASSERT_EQ(c.read_states(*leader).size(), 1u);
  EXPECT_EQ(c.read_states(*leader)[0].context, 42u);
  EXPECT_EQ(c.read_states(*leader)[0].index, c.node(*leader).commit_index());

  // Isolated, the old leader cannot confirm leadership: no read state, even
  // after the others elected a new leader and committed more.
  c.Isolate(*leader);
  ASSERT_TRUE(c.ReadIndex(*leader, 43).ok());
  c.RunTicks(60);
  EXPECT_EQ(c.read_states(*leader).size(), 1u);
  std::optional<NodeId> new_leader;
  for (NodeId id : c.ids()) {
    if (id != *leader && c.node(id).role() == Role::kLeader) new_leader = id;
  }
  ASSERT_TRUE(new_leader.has_value()) << c.Describe();
  ASSERT_TRUE(c.Propose(*new_leader, "y").ok());
  c.RunTicks(3);
  ASSERT_TRUE(c.ReadIndex(*new_leader, 44).ok());
  c.RunTicks(3);
  ASSERT_EQ(c.read_states(*new_leader).size(), 1u);
  EXPECT_EQ(c.read_states(*new_leader)[0].index,
            c.node(*new_leader).commit_index());
  // Healing deposes the old leader; its pending read is dropped.
  c.Heal();
  c.RunTicks(20);
  EXPECT_EQ(c.node(*leader).role(), Role::kFollower);
  EXPECT_EQ(c.read_states(*leader).size(), 1u);
  ExpectSafe(c);
}

// A follower cut off for a long time keeps campaigning. With pre-vote its
// term does not grow (no quorum grants the pre-vote), so on its return the
// leader keeps its term; without pre-vote it deposes the leader.
TEST(ClusterTest, PreVoteStopsARejoiningNodeFromDisruptingTheLeader) {
  for (bool pre_vote : {true, false}) {
    SCOPED_TRACE(absl::StrCat("pre_vote=", pre_vote));
    ClusterOptions o = Options(3, 5);
    o.config.pre_vote = pre_vote;
    o.config.check_quorum = true;
    Cluster c(o);
    std::optional<NodeId> leader = c.WaitForLeader(100);
    ASSERT_TRUE(leader.has_value());
    c.Stabilize();
    const Term term = c.node(*leader).term();
    NodeId loner = *leader == 1 ? 2 : 1;
    c.Isolate(loner);
    c.RunTicks(100);
    if (pre_vote) {
      EXPECT_EQ(c.node(loner).term(), term);
    } else {
      EXPECT_GT(c.node(loner).term(), term + 2);
    }
    c.Heal();
    c.RunTicks(50);
    std::optional<NodeId> after = c.Leader();
    ASSERT_TRUE(after.has_value());
    if (pre_vote) {
      EXPECT_EQ(*after, *leader);
      EXPECT_EQ(c.node(*after).term(), term);
    } else {
      EXPECT_GT(c.node(*after).term(), term);
    }
    ExpectSafe(c);
  }
}

// Raft paper figure 7 / etcd's TestLeaderSyncFollowerLog: a new leader
// brings every kind of divergent follower log in line with its own, and the
// fast back-off needs few rejected round trips.
TEST(ClusterTest, LeaderSyncsDivergentFollowerLogs) {
  const std::vector<Term> leader_log = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
  const std::vector<std::vector<Term>> followers = {
      {1, 1, 1, 4, 4, 5, 5, 6, 6},           // (a) missing one
      {1, 1, 1, 4},                          // (b) missing many
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},     // (c) an extra entry
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},  // (d) extra entries of term 7
      {1, 1, 1, 4, 4, 4, 4},                 // (e) extra term-4 entries
      {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},     // (f) terms 2 and 3 only
  };
  for (size_t k = 0; k < followers.size(); ++k) {
    SCOPED_TRACE(absl::StrCat("follower case ", k));
    ClusterOptions o = Options(3, 1 + k);
    o.config.pre_vote = false;
    o.initial_entries[1] = LogOfTerms(leader_log);
    o.initial_hard_states[1] = HardState{8, kNoNode, 0};
    o.initial_entries[2] = LogOfTerms(followers[k]);
    o.initial_hard_states[2] = HardState{followers[k].back(), kNoNode, 0};
    Cluster c(o);
    // Node 3 (empty log) votes for node 1; node 2 may refuse.
    c.Campaign(1);
    c.Stabilize();
    ASSERT_EQ(c.node(1).role(), Role::kLeader) << c.Describe();
    c.RunTicks(5);
    c.Stabilize();
    const MemoryStorage& l = c.storage(1);
    const MemoryStorage& f = c.storage(2);
    ASSERT_EQ(f.LastIndex(), l.LastIndex());
    EXPECT_EQ(*f.Entries(1, f.LastIndex() + 1, UINT64_MAX),
              *l.Entries(1, l.LastIndex() + 1, UINT64_MAX));
    // One rejection per differing term at most (plus the first probe).
    EXPECT_LE(c.append_rejections(), 3u);
    EXPECT_EQ(c.node(2).commit_index(), 11u);
    ExpectSafe(c);
  }
}

// Heals the network, restarts every node, commits a new entry, shuts down
// the nodes outside the group's (then committed) membership as an operator
// would, and requires that every member applied the same sequence, each
// proposal at most once, and that every other node applied a prefix of it.
// Returns the number of entries applied.
size_t RecoverAndConverge(Cluster& c) {
  EXPECT_TRUE(c.violations().empty())
      << c.violations().front() << "\n" << c.Describe();
  if (!c.violations().empty()) return 0;
  c.Heal();
  c.network() = {};
  for (NodeId id : c.ids()) {
    if (!c.IsUp(id)) {
      EXPECT_TRUE(c.Restart(id).ok());
    }
  }
  bool converged = false;
  Membership members;
  for (int attempt = 0; attempt < 10 && !converged; ++attempt) {
    std::optional<NodeId> leader = c.WaitForLeader(300);
    EXPECT_TRUE(leader.has_value()) << c.Describe();
    if (!leader.has_value()) return 0;
    absl::StatusOr<Index> final_index =
        c.Propose(*leader, absl::StrCat("final", attempt));
    if (!final_index.ok()) {  // Lost leadership or transferring: retry.
      c.Tick();
      continue;
    }
    // Once it commits, so has the leader's membership (no change is
    // proposed any more).
    for (int i = 0; i < 300 && c.IsUp(*leader) &&
                    c.node(*leader).role() == Role::kLeader &&
                    c.node(*leader).commit_index() < *final_index;
         ++i) {
      c.Tick();
    }
    if (!c.IsUp(*leader) || c.node(*leader).role() != Role::kLeader ||
        c.node(*leader).commit_index() < *final_index) {
      continue;
    }
    members = c.node(*leader).membership();
    for (NodeId id : c.ids()) {
      if (!members.IsMember(id) && c.IsUp(id)) c.Crash(id);
    }
    converged = c.WaitForApplied(*final_index, 300);
  }
  EXPECT_TRUE(converged) << c.Describe();
  if (!converged) return 0;
  // Followers learn the last commit index with a heartbeat.
  c.RunTicks(3);
  c.Stabilize();
  const std::vector<Entry>& reference = c.applied(members.voters.front());
  for (NodeId id : c.ids()) {
    const std::vector<Entry>& applied = c.applied(id);
    if (members.IsMember(id)) {
      EXPECT_EQ(applied, reference) << "node " << id << "\n" << c.Describe();
    } else {
      EXPECT_LE(applied.size(), reference.size()) << "node " << id;
      EXPECT_TRUE(std::equal(applied.begin(), applied.end(), reference.begin()))
          << "node " << id;
    }
  }
  std::set<std::string> seen;
  for (const Entry& e : reference) {
    if (e.type == EntryType::kNormal) {
      EXPECT_TRUE(seen.insert(e.data).second) << e.data;
    }
  }
  ExpectSafe(c);
  return reference.size();
}

Term MaxTerm(Cluster& c) {
  Term t = 0;
  for (NodeId id : c.ids()) {
    if (c.IsUp(id)) t = std::max(t, c.node(id).term());
  }
  return t;
}

// Raft figure 8, scripted: the leader of term 4 holds an entry of term 2
// that reaches a majority before its own no-op does. Committing it by
// counting replicas would let node 5 (holding a term-3 entry at the same
// index) win the next election and overwrite a committed entry; the cluster
// would report a state machine or leader completeness violation.
TEST(ClusterTest, Figure8OldTermEntryIsNotCommittedByCounting) {
  ClusterOptions o = Options(5, 1);
  o.config.pre_vote = false;
  o.config.check_quorum = false;
  o.config.append_bytes_max = 1;  // One entry per append.
  o.config.inflight_appends_max = 1;
  o.initial_entries = {{1, LogOfTerms({1, 2})}, {2, LogOfTerms({1, 2})},
                       {3, LogOfTerms({1})},    {4, LogOfTerms({1})},
                       {5, LogOfTerms({1, 3})}};
  for (NodeId id = 1; id <= 4; ++id) o.initial_hard_states[id] = {3, 0, 1};
  o.initial_hard_states[5] = {4, 0, 1};  // It campaigns in term 5.
  Cluster c(o);
  auto carries_noop = [](const Message& m) {
    return m.type == MessageType::kAppend && !m.entries.empty() &&
           m.entries.back().index >= 3;
  };
  // Node 1 wins term 4 with nodes 3 and 4 and brings them its entry 2 of
  // term 2, but its no-op (index 3) never arrives.
  c.Isolate(5);
  c.CutOneWay(1, 2);
  c.Campaign(1);
  // (Its first probes carry the no-op but are rejected: let those through.)
  c.DeliverIf([&](const Message& m) {
    return !carries_noop(m) || c.node(m.to).last_index() < m.index;
  });
  ASSERT_EQ(c.node(1).role(), Role::kLeader);
  ASSERT_EQ(c.node(1).term(), 4u);
  ASSERT_EQ(*c.node(3).TermAt(2), 2u);
  ASSERT_EQ(*c.node(4).TermAt(2), 2u);
  EXPECT_EQ(c.node(1).commit_index(), 1u)
      << "entry 2 of term 2 committed by counting replicas";
  c.DropIf(carries_noop);
  c.Crash(1);
  // Node 5's last entry (term 3) beats the others' (term 2): it wins and
  // overwrites index 2, which is legal because it was never committed.
  c.Heal();
  c.Campaign(5);
  c.Stabilize();
  ASSERT_EQ(c.node(5).role(), Role::kLeader);
  ASSERT_TRUE(c.Restart(1).ok());
  ASSERT_TRUE(c.WaitForApplied(c.node(5).last_index(), 100)) << c.Describe();
  for (NodeId id : c.ids()) EXPECT_EQ(*c.node(id).TermAt(2), 3u);
  ExpectSafe(c);
}

bool Chance(std::mt19937_64& rng, int percent) {
  return static_cast<int>(rng() % 100) < percent;
}

// Runs `faults(seed, rng)` for seeds 1..seeds: it builds a cluster, injects
// faults and returns it; then the cluster must recover and converge. Stops
// at the first failing seed (printed by the trace; it replays exactly).
// Checks that the runs made progress and saw elections, not just stayed
// safe.
// What a run exercised, summed over its seeds.
struct RunStats {
  uint64_t seeds = 0;  // Run (SEED=N runs one).
  uint64_t applied = 0;
  uint64_t terms = 0;
  uint64_t snapshots = 0;
  uint64_t membership_changes = 0;  // kConfig entries committed.
  uint64_t transfers = 0;           // kTimeoutNow delivered.
  uint64_t reads = 0;               // ReadStates served.
};

// Runs `faults(seed, rng)` for seeds 1..seeds: it builds a cluster, injects
// faults and returns it; then the cluster must recover and converge. Stops
// at the first failing seed (printed by the trace; it replays exactly).
// Checks that the runs made progress and saw elections, not just stayed
// safe. SEED_LOG=1 prints each seed before it runs (for crashes).
template <typename Faults>
RunStats RunSeeds(const char* name, uint64_t seeds, uint64_t applied_min,
                  uint64_t terms_min, Faults faults) {
  RunStats stats;
  // A soak: SOAK_SEEDS=N runs N seeds instead; SEED=N replays one seed
  // (bazel run, README).
  uint64_t first = 1;
  if (const char* soak = std::getenv("SOAK_SEEDS"); soak != nullptr) {
    seeds = std::strtoull(soak, nullptr, 10);
  }
  if (const char* one = std::getenv("SEED"); one != nullptr) {
    first = seeds = std::strtoull(one, nullptr, 10);
  }
  for (uint64_t seed = first; seed <= seeds; ++seed) {
    SCOPED_TRACE(absl::StrCat(name, " seed=", seed));
    if (std::getenv("SEED_LOG") != nullptr) {
      std::cerr << name << " seed=" << seed << "\n";
    }
    std::mt19937_64 rng(seed * 7919);
    std::unique_ptr<Cluster> c = faults(seed, rng);
    EXPECT_TRUE(c != nullptr);
    if (c == nullptr) return stats;
    const size_t applied = RecoverAndConverge(*c);
    ++stats.seeds;
    stats.applied += applied;
    stats.terms += MaxTerm(*c);
    stats.snapshots += c->snapshots_installed();
    stats.transfers += c->delivered(MessageType::kTimeoutNow);
    for (NodeId id : c->ids()) {
      stats.reads += c->read_states(id).size();
      if (c->applied(id).size() == applied) {
        for (const Entry& e : c->applied(id)) {
          if (e.type == EntryType::kConfig) ++stats.membership_changes;
        }
        break;
      }
    }
    if (::testing::Test::HasFailure()) return stats;
  }
  std::cout << name << ": " << seeds << " seeds, " << stats.applied
            << " entries applied, " << stats.terms << " terms, "
            << stats.snapshots << " snapshots installed, "
            << stats.membership_changes << " membership changes, "
            << stats.transfers << " TimeoutNow, " << stats.reads
            << " reads\n";
  if (first == 1) {
    EXPECT_GT(stats.applied, seeds * applied_min);
    EXPECT_GT(stats.terms, seeds * terms_min);
  }
  return stats;
}

// The clients of a random run: bursts of proposals to the leader, reads on
// any node that believes it leads.
struct Workload {
  uint64_t seed = 0;
  int burst_max = 1;
  int proposals = 0;
  uint64_t next_context = 1;
};

void ReadOnAnyLeader(Cluster& c, std::mt19937_64& rng, uint64_t context);

void ClientStep(Cluster& c, std::mt19937_64& rng, Workload& w,
                std::optional<NodeId> leader) {
  if (leader.has_value() && Chance(rng, 40)) {
    const int n = 1 + static_cast<int>(rng() % static_cast<uint64_t>(w.burst_max));
    for (int i = 0; i < n; ++i) {
      (void)c.Propose(*leader, absl::StrCat("s", w.seed, "p", w.proposals++));
    }
  }
  if (Chance(rng, 5)) ReadOnAnyLeader(c, rng, w.next_context++);
}

// Network and process faults of a random run, each with a probability in
// percent per tick: a random bipartition, healing, a crash (while fewer
// than down_max nodes are down), a restart.
struct FaultRates {
  int partition = 0;
  int heal = 0;
  int crash = 0;
  int restart = 0;
};

void FaultStep(Cluster& c, std::mt19937_64& rng, const FaultRates& r,
               size_t down_max) {
  if (Chance(rng, r.partition)) {
    std::vector<NodeId> a, b;
    for (NodeId id : c.ids()) (rng() % 2 ? a : b).push_back(id);
    c.Partition({a, b});
  }
  if (Chance(rng, r.heal)) c.Heal();
  std::vector<NodeId> up, down;
  for (NodeId id : c.ids()) (c.IsUp(id) ? up : down).push_back(id);
  if (Chance(rng, r.crash) && down.size() < down_max) {
    c.Crash(up[rng() % up.size()]);
  }
  if (Chance(rng, r.restart) && !down.empty()) {
    EXPECT_TRUE(c.Restart(down[rng() % down.size()]).ok());
  }
}

// A read on a random node that believes it leads, deposed leaders
// included: those must never serve a stale read (the cluster checks every
// ReadState against what was committed anywhere when it was requested).
void ReadOnAnyLeader(Cluster& c, std::mt19937_64& rng, uint64_t context) {
  std::vector<NodeId> leaders;
  for (NodeId id : c.ids()) {
    if (c.IsUp(id) && c.node(id).role() == Role::kLeader) leaders.push_back(id);
  }
  if (!leaders.empty()) (void)c.ReadIndex(leaders[rng() % leaders.size()], context);
}

// With probability percent: a random up node snapshots its state machine
// and compacts its log, keeping 0-3 entries.
void CompactSometimes(Cluster& c, std::mt19937_64& rng, int percent) {
  if (!Chance(rng, percent)) return;
  const NodeId id = c.ids()[rng() % c.ids().size()];
  if (!c.IsUp(id)) return;
  // FailedPrecondition when nothing is applied yet: fine.
  (void)c.Compact(id, rng() % 4);
}

// Fails the calling test at the first violation, with the cluster's state.
// Many seeds, random faults: drops, duplicates, delays, partitions, crashes
// and restarts, proposals and reads, varied configurations. Then heal
// everything and require that all nodes converge on one applied sequence
// (safety is checked all along).
TEST(ClusterTest, RandomFaultsManySeeds) {
  const RunStats stats = RunSeeds("random faults", 200, 50, 3, [](uint64_t seed, std::mt19937_64& rng) {
    ClusterOptions o = Options(seed % 2 == 0 ? 5 : 3, seed);
    o.config.pre_vote = seed % 4 < 2;
    o.config.check_quorum = seed % 3 != 0;
    o.config.inflight_appends_max = 1 + static_cast<int>(seed % 8);
    o.config.append_bytes_max = seed % 5 == 0 ? 64 : 4096;
    o.config.committed_bytes_max = seed % 7 == 0 ? 64 : 1 << 20;
    o.config.broadcast_commit = seed % 5 == 1;
    o.config.lease_reads = o.config.check_quorum && seed % 5 == 2;
    o.config.snapshot_chunk_bytes = 32 + seed % 500;
    o.config.snapshot_inflight_chunks_max = 1 + static_cast<int>(seed % 3);
    o.interleave_probability = seed % 3 == 1 ? 0.3 : 0.0;
    o.network.drop_probability = 0.05 * static_cast<double>(seed % 5);
    o.network.duplicate_probability = 0.02;
    o.network.delay_ticks_max = static_cast<int>(seed % 4);
    auto c = std::make_unique<Cluster>(o);
    const size_t down_max = (c->ids().size() - 1) / 2;
    Workload w{seed, 3};
    for (int tick = 0; tick < 400; ++tick) {
      std::optional<NodeId> leader = c->Leader();
      ClientStep(*c, rng, w, leader);
      if (leader.has_value() && Chance(rng, 1)) {
        (void)c->TransferLeadership(*leader, 1 + rng() % c->ids().size());
      }
      CompactSometimes(*c, rng, 3);
      FaultStep(*c, rng, FaultRates{3, 4, 2, 4}, down_max);
      c->Tick();
      if (!c->violations().empty()) break;
    }
    return c;
  });
  if (stats.seeds >= 100) {
    EXPECT_GT(stats.snapshots, stats.seeds / 4);
    EXPECT_GT(stats.transfers, stats.seeds / 10);
  }
}

// Leader churn: the leader crashes often, right after handing out entries,
// and comes back soon; appends carry one entry each so followers hold
// different prefixes (the ground of Raft figure 8).
TEST(ClusterTest, LeaderChurnManySeeds) {
  RunSeeds("leader churn", 200, 20, 10, [](uint64_t seed, std::mt19937_64& rng) {
    ClusterOptions o = Options(seed % 3 == 0 ? 5 : 3, seed);
    o.config.election_timeout_ticks = 4;
    o.config.pre_vote = seed % 2 == 0;
    o.config.append_bytes_max = 1;  // One entry per append.
    o.config.inflight_appends_max = 1 + static_cast<int>(seed % 3);
    o.interleave_probability = seed % 4 == 3 ? 0.3 : 0.0;
    o.network.drop_probability = 0.1;
    o.network.delay_ticks_max = 2;
    auto c = std::make_unique<Cluster>(o);
    const size_t down_max = (c->ids().size() - 1) / 2;
    int proposals = 0;
    for (int tick = 0; tick < 300; ++tick) {
      std::optional<NodeId> leader = c->Leader();
      std::vector<NodeId> down;
      for (NodeId id : c->ids()) {
        if (!c->IsUp(id)) down.push_back(id);
      }
      if (leader.has_value()) {
        (void)c->Propose(*leader, absl::StrCat("s", seed, "p", proposals++));
        if (Chance(rng, 15) && down.size() < down_max) c->Crash(*leader);
      }
      if (Chance(rng, 30) && !down.empty()) {
        EXPECT_TRUE(c->Restart(down[rng() % down.size()]).ok());
      }
      CompactSometimes(*c, rng, 5);
      c->Tick();
      if (!c->violations().empty()) break;
    }
    return c;
  });
}

// One random membership change through `leader`: add a learner, promote a
// learner, or remove a member (the leader included). Refusals (a change
// pending, a transfer...) are fine.
void RandomMembershipChange(Cluster& c, NodeId leader, std::mt19937_64& rng) {
  const Membership m = c.node(leader).membership();
  std::vector<NodeId> outside;
  for (NodeId id : c.ids()) {
    if (!m.IsMember(id)) outside.push_back(id);
  }
  MembershipChange change;
  switch (rng() % 3) {
    case 0:
      if (outside.empty()) return;
      change = {MembershipChangeType::kAddLearner, outside[rng() % outside.size()]};
      break;
    case 1:
      if (m.learners.empty()) return;
      change = {MembershipChangeType::kAddVoter,
                m.learners[rng() % m.learners.size()]};
      break;
    default: {
      // Keep at least two voters most of the time, so that the runs mostly
      // make progress; removing down to one is legal and happens too.
      std::vector<NodeId> all = m.learners;
      if (m.voters.size() > 2 || Chance(rng, 10)) {
        all.insert(all.end(), m.voters.begin(), m.voters.end());
      }
      if (all.empty()) return;
      change = {MembershipChangeType::kRemoveNode, all[rng() % all.size()]};
      break;
    }
  }
  (void)c.ChangeMembership(leader, change);
}

// Membership changes (learners added, promoted, nodes removed, the leader
// included), snapshots and compactions, leadership transfers, lease reads,
// with partitions, crashes, drops, duplicates and delays.
TEST(ClusterTest, MembershipSnapshotsTransfersManySeeds) {
  const RunStats stats = RunSeeds("membership churn", 200, 20, 2, [](uint64_t seed, std::mt19937_64& rng) {
    ClusterOptions o = Options(seed % 3 == 0 ? 5 : 3, seed);
    o.spare_nodes = 2;
    o.config.pre_vote = seed % 2 == 0;
    o.config.check_quorum = seed % 3 != 1;
    o.config.lease_reads = o.config.check_quorum && seed % 4 == 0;
    o.config.snapshot_chunk_bytes = 16 + seed % 300;
    o.config.snapshot_inflight_chunks_max = 1 + static_cast<int>(seed % 3);
    o.config.snapshot_stall_ticks = 5;
    o.config.inflight_appends_max = 1 + static_cast<int>(seed % 4);
    o.config.append_bytes_max = seed % 5 == 0 ? 64 : 4096;
    o.interleave_probability = seed % 3 == 2 ? 0.3 : 0.0;
    o.network.drop_probability = 0.03 * static_cast<double>(seed % 4);
    o.network.duplicate_probability = 0.02;
    o.network.delay_ticks_max = static_cast<int>(seed % 3);
    auto c = std::make_unique<Cluster>(o);
    Workload w{seed, 2};
    for (int tick = 0; tick < 400; ++tick) {
      std::optional<NodeId> leader = c->Leader();
      ClientStep(*c, rng, w, leader);
      if (leader.has_value() && Chance(rng, 5)) {
        RandomMembershipChange(*c, *leader, rng);
      }
      if (leader.has_value() && Chance(rng, 2)) {
        (void)c->TransferLeadership(*leader, 1 + rng() % c->ids().size());
      }
      CompactSometimes(*c, rng, 5);
      FaultStep(*c, rng, FaultRates{2, 5, 2, 5}, /*down_max=*/1);
      c->Tick();
      if (!c->violations().empty()) break;
    }
    return c;
  });
  if (stats.seeds >= 100) {
    EXPECT_GT(stats.membership_changes, stats.seeds);
    EXPECT_GT(stats.snapshots, stats.seeds / 2);
    EXPECT_GT(stats.transfers, stats.seeds / 4);
    EXPECT_GT(stats.reads, 2 * stats.seeds);
  }
}

// Leader leases: the leader is cut off from the majority right after they
// answered its heartbeats, and is asked for reads every tick while the
// majority waits out its promise, elects a new leader and commits. The
// lease must run out before the new leader can commit: every ReadState is
// checked against everything committed anywhere when it was requested.
TEST(ClusterTest, LeaseReadsOfACutOffLeaderAreNeverStale) {
  uint64_t lease_reads_after_cut = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed=", seed));
    ClusterOptions o = Options(seed % 2 == 0 ? 5 : 3, seed);
    o.config.check_quorum = true;
    o.config.lease_reads = true;
    o.config.lease_drift_margin_ticks = 1;
    o.network.delay_ticks_max = static_cast<int>(seed % 3);
    Cluster c(o);
    std::optional<NodeId> old_leader = c.WaitForLeader(100);
    ASSERT_TRUE(old_leader.has_value());
    ASSERT_TRUE(c.Propose(*old_leader, "a").ok());
    c.RunTicks(5);
    old_leader = c.Leader();
    ASSERT_TRUE(old_leader.has_value());
    c.Isolate(*old_leader);
    const size_t reads_before = c.read_states(*old_leader).size();
    uint64_t context = 1000;
    bool new_leader_committed = false;
    for (int tick = 0; tick < 60; ++tick) {
      if (c.node(*old_leader).role() == Role::kLeader) {
        (void)c.ReadIndex(*old_leader, context++);
      }
      std::optional<NodeId> now = c.Leader();
      if (now.has_value() && *now != *old_leader) {
        (void)c.Propose(*now, absl::StrCat("b", tick));
        new_leader_committed = true;
      }
      c.Tick();
    }
    EXPECT_TRUE(new_leader_committed) << c.Describe();
    lease_reads_after_cut += c.read_states(*old_leader).size() - reads_before;
    ExpectSafe(c);
  }
  // The cut-off leaders did serve reads on their leases (then stopped).
  EXPECT_GT(lease_reads_after_cut, 20u);
}

// A follower that promised the leader not to vote (by answering its
// heartbeat) crashes and restarts at once: it must keep the promise, or the
// nodes the leader cannot reach elect a new leader during its lease.
// Two followers are cut off from the leader (so they campaign, refused by
// the others) while two keep its lease; then one of those restarts, cut
// off from the leader too.
TEST(ClusterTest, LeaseSurvivesARestartedFollower) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed=", seed));
    ClusterOptions o = Options(5, seed);
    o.config.check_quorum = true;
    o.config.lease_reads = true;
    o.config.lease_drift_margin_ticks = 1;
    Cluster c(o);
    std::optional<NodeId> leader = c.WaitForLeader(100);
    ASSERT_TRUE(leader.has_value());
    const NodeId l = *leader;
    std::vector<NodeId> others;
    for (NodeId id : c.ids()) {
      if (id != l) others.push_back(id);
    }
    ASSERT_TRUE(c.Propose(l, "a").ok());
    c.RunTicks(2);  // Everyone holds "a": the cut-off nodes' logs are current.
    c.CutLink(l, others[2]);
    c.CutLink(l, others[3]);
    c.RunTicks(25);  // Those two campaign in vain; the others are sticky.
    ASSERT_EQ(c.node(l).role(), Role::kLeader);
    // The restarted follower cannot hear the leader any more, and one of
    // the cut-off nodes campaigns at once: without the start-up grace the
    // restarted node would give it the third vote within the lease.
    c.Crash(others[0]);
    ASSERT_TRUE(c.Restart(others[0]).ok());
    c.CutLink(l, others[0]);
    c.Campaign(others[2]);
    uint64_t context = 1;
    const size_t reads_before = c.read_states(l).size();
    for (int tick = 0; tick < 40; ++tick) {
      if (c.node(l).role() == Role::kLeader) (void)c.ReadIndex(l, context++);
      c.Tick();
    }
    EXPECT_GT(c.read_states(l).size(), reads_before);
    ExpectSafe(c);
  }
}

// A follower partitioned while the leader compacts (several times) catches
// up through snapshots streamed in many chunks over a lossy network.
TEST(ClusterTest, PartitionedFollowerCatchesUpThroughASnapshot) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed=", seed));
    ClusterOptions o = Options(3, seed);
    o.config.snapshot_chunk_bytes = 50;
    o.config.snapshot_inflight_chunks_max = 3;
    o.config.snapshot_stall_ticks = 4;
    o.network.drop_probability = 0.1;
    o.network.delay_ticks_max = 2;
    Cluster c(o);
    std::optional<NodeId> leader = c.WaitForLeader(100);
    ASSERT_TRUE(leader.has_value());
    const NodeId lagging = *leader == 3 ? 2 : 3;
    c.Isolate(lagging);
    for (int i = 0; i < 60; ++i) {
      leader = c.Leader();
      if (leader.has_value() && *leader != lagging) {
        (void)c.Propose(*leader, absl::StrCat("v", i));
      }
      c.Tick();
      if (i % 20 == 19) {
        for (NodeId id : c.ids()) {
          if (id != lagging) (void)c.Compact(id, 2);
        }
      }
    }
    c.Heal();
    leader = c.WaitForLeader(100);
    ASSERT_TRUE(leader.has_value());
    const uint64_t installed_before = c.snapshots_installed();
    // Everything the leader holds (the last proposals may still be in
    // flight) ends up applied everywhere, the lagging node included.
    ASSERT_TRUE(c.WaitForApplied(c.node(*leader).last_index(), 400))
        << c.Describe();
    EXPECT_GT(c.snapshots_installed(), installed_before);
    EXPECT_GT(c.storage(lagging).LastSnapshot().bytes,
              o.config.snapshot_chunk_bytes * 10);
    EXPECT_EQ(c.applied(lagging), c.applied(*leader));
    ExpectSafe(c);
  }
}

// Removing the leader under faults: it leads until the removal commits,
// then steps down, and the rest elect a leader among themselves; one
// leader per term throughout (the cluster checks it).
TEST(ClusterTest, RemovingTheLeaderUnderFaults) {
  int removed_leaders = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed=", seed));
    ClusterOptions o = Options(5, seed);
    o.config.pre_vote = seed % 2 == 0;
    o.network.drop_probability = 0.05;
    o.network.delay_ticks_max = 2;
    Cluster c(o);
    std::optional<NodeId> leader = c.WaitForLeader(100);
    ASSERT_TRUE(leader.has_value());
    ASSERT_TRUE(c.Propose(*leader, "a").ok());
    c.RunTicks(5);
    leader = c.WaitForLeader(100);
    ASSERT_TRUE(leader.has_value());
    const NodeId removed = *leader;
    absl::StatusOr<Index> index = c.ChangeMembership(
        removed, MembershipChange{MembershipChangeType::kRemoveNode, removed});
    if (!index.ok()) continue;  // Not yet committed in its term: skip.
    for (int i = 0; i < 200; ++i) {
      c.Tick();
      std::optional<NodeId> now = c.Leader();
      if (now.has_value() && *now != removed &&
          c.node(*now).commit_index() >= *index) {
        break;
      }
    }
    std::optional<NodeId> next = c.Leader();
    ASSERT_TRUE(next.has_value()) << c.Describe();
    if (c.node(*next).membership().IsMember(removed)) continue;  // Truncated.
    EXPECT_NE(*next, removed);
    EXPECT_EQ(c.node(removed).role(), Role::kFollower);
    for (int i = 0; i < 50; ++i) c.Tick();
    EXPECT_NE(c.node(removed).role(), Role::kLeader);
    EXPECT_NE(c.node(removed).role(), Role::kCandidate);
    ExpectSafe(c);
    ++removed_leaders;
  }
  EXPECT_GE(removed_leaders, 10);
}

}  // namespace
}  // namespace blizzard::consensus
