#include "tools/sim/simulator.h"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "consensus/raft.h"
#include "tools/lincheck/lincheck.h"
#include "tools/sim/kv_state_machine.h"
#include "tools/sim/safety_checker.h"
#include "tools/sim/sim_log_storage.h"
#include "tools/sim/trace.h"
#include "transport/sim/sim_network.h"
#include "transport/sim/splitmix64.h"

namespace blizzard::sim {
namespace {

using consensus::NodeId;
using transport::SplitMix64;

constexpr uint64_t kClusterId = 0xb112;
constexpr uint64_t kClientIdBase = 1000;
// Ticks a node takes at once after a stall (the server's kTicksPerWakeupMax).
constexpr int kTicksPerIterationMax = 16;
// While a paused node holds messages that are due, the clock moves at
// least this often (NextDeliveryUs cannot see past them).
constexpr int64_t kPausedQuantumUs = 100;

// Stream ids for SubSeed: one per component, so adding draws to one
// component never shifts another's.
enum Stream : uint64_t {
  kStreamNetwork = 1,
  kStreamNemesis = 2,
  kStreamClient = 3,
  kStreamRaft = 4,
  kStreamPmem = 5,
  kStreamTick = 6,
  kStreamSwarm = 7,
};

uint64_t SubSeed(uint64_t seed, uint64_t stream, uint64_t a = 0, uint64_t b = 0) {
  SplitMix64 r(seed);
  uint64_t h = r.Next() ^ (stream * 0x9e3779b97f4a7c15ull);
  h = SplitMix64(h).Next() ^ (a * 0xbf58476d1ce4e5b9ull);
  h = SplitMix64(h).Next() ^ (b * 0x94d049bb133111ebull);
  return SplitMix64(h).Next();
}

struct SimNode {
  NodeId id = 0;
  // Durable: the data pool's image and the snapshot beside the log.
  std::unique_ptr<KvStateMachine> sm;
  SnapshotStore snapshots;
  // While up:
  std::unique_ptr<SimLogStorage> log;
  std::unique_ptr<transport::Transport> endpoint;
  std::unique_ptr<NodeDriver> driver;
  // While down: what the log's region holds.
  std::vector<uint8_t> image;
  bool up = false;
  uint64_t incarnation = 0;
  int64_t next_tick_us = 0;
  int64_t tick_period_us = 0;  // This incarnation's clock (drift).
  int64_t restart_at_us = kNever;
  int64_t paused_until_us = 0;
};

class Simulator final : public NodeObserver {
 public:
  explicit Simulator(const SimulatorOptions& options)
      : o_(options),
        trace_(options.trace_out),
        checker_(options.check_persist_before_send),
        nemesis_random_(SubSeed(options.seed, kStreamNemesis)),
        tick_random_(SubSeed(options.seed, kStreamTick)) {}

  ~Simulator() override {
    // Drivers and endpoints before the logs and the network they use.
    for (SimNode& n : nodes_) {
      n.driver.reset();
      n.endpoint.reset();
    }
    client_endpoints_.clear();
  }

  SimulationResult Run();

  // NodeObserver.
  void OnSend(NodeId node, const consensus::Message& m, const SimLogStorage& durable) override;
  void OnReceive(NodeId node, const consensus::Message& m) override;
  void OnPersist(NodeId node, const std::vector<consensus::Entry>& entries,
                 const std::optional<consensus::HardState>& hs, const SimLogStorage& log) override;
  void OnApplied(NodeId node, const consensus::Entry& entry,
                 const std::vector<AppliedCommand>& commands, const KvStateMachine& sm) override;
  void OnSoftState(NodeId node, const consensus::SoftState& ss, consensus::Term term) override;
  void OnSnapshotInstalled(NodeId node, const consensus::SnapshotMeta& meta,
                           const KvStateMachine& sm) override;
  void OnCompacted(NodeId node, const consensus::SnapshotMeta& meta,
                   consensus::Index first_index) override;
  void OnClientRequest(NodeId node, const Command& c) override;
  void OnClientReply(NodeId node, const Reply& r) override;

 private:
  void Init();
  // One instant; `faulty` false in the convergence phase.
  void Step(bool faulty);
  int64_t NextEventUs(bool faulty) const;
  void RunNode(SimNode& n);
  void RunClients(bool issue);
  void Nemesis();
  void RunScheduled();
  void Schedule(int64_t at_us, std::function<void()> action);
  void CrashNode(SimNode& n, std::vector<uint8_t> image, const char* how);
  // An immediate power failure of an up node.
  void PowerFail(SimNode& n);
  void RestartNode(SimNode& n);
  bool StartNode(SimNode& n, std::unique_ptr<SimLogStorage> log);
  SimLogOptions LogOptions(const SimNode& n) const;
  DriverOptions DriverOptionsFor(const SimNode& n) const;
  void StopFaults();
  bool Converged() const;
  std::string DescribeCluster() const;
  void FinalChecks();
  void CheckHistory();
  SimulationResult Result();
  SimNode* RandomUpNode();
  std::vector<NodeId> RandomGroup();
  // The up leader of the highest term, if any.
  SimNode* CurrentLeader();
  void TransferLeadership();
  void ChangeMembership();
  // The members (voters and learners) of the group at the end.
  std::vector<NodeId> FinalMembers() const;
  bool failed() const { return checker_.failed(); }

  const SimulatorOptions o_;
  Trace trace_;
  SafetyChecker checker_;
  SplitMix64 nemesis_random_;
  SplitMix64 tick_random_;
  std::unique_ptr<transport::SimNetwork> network_;
  std::vector<SimNode> nodes_;
  std::vector<NodeId> all_ids_;         // Every node, spares included.
  std::vector<NodeId> initial_voters_;  // The bootstrap membership.
  std::vector<std::unique_ptr<transport::Transport>> client_endpoints_;
  std::vector<std::unique_ptr<SimClient>> clients_;
  int64_t now_us_ = 0;
  int64_t next_fault_us_ = kNever;
  // Scheduled heals, by time; equal times keep their insertion order.
  std::multimap<int64_t, std::function<void()>> scheduled_;
  // Every write executed anywhere: when it first was, with what result.
  struct Effect {
    int64_t applied_us = 0;
    CommandResult result;
  };
  std::map<std::pair<uint64_t, uint64_t>, Effect> effects_;
  SimulationStats stats_;
};

const char* RoleShort(consensus::Role role) { return consensus::RoleName(role); }

// ------------------------------------------------------------ observer

void Simulator::OnSend(NodeId node, const consensus::Message& m, const SimLogStorage& durable) {
  checker_.OnSend(node, m, durable);
  trace_.Event(now_us_, "send",
               {node, m.to, static_cast<uint64_t>(m.type), m.term, m.index, m.log_term, m.commit,
                m.entries.size(), m.reject ? 1u : 0u, m.reject_hint, m.context},
               [&] { return consensus::DebugString(m); });
}

void Simulator::OnReceive(NodeId node, const consensus::Message& m) {
  trace_.Event(now_us_, "recv", {node, m.from, static_cast<uint64_t>(m.type), m.term, m.index},
               [&] { return absl::StrCat("node ", node, " <- ", consensus::DebugString(m)); });
}

void Simulator::OnPersist(NodeId node, const std::vector<consensus::Entry>& entries,
                          const std::optional<consensus::HardState>& hs, const SimLogStorage& log) {
  checker_.OnPersist(node, entries, log);
  if (entries.empty() && !hs.has_value()) return;
  const consensus::HardState h = hs.value_or(consensus::HardState{});
  trace_.Event(now_us_, "persist",
               {node, entries.empty() ? 0 : entries.front().index,
                entries.empty() ? 0 : entries.back().index, hs.has_value() ? 1u : 0u, h.term,
                h.vote, h.commit},
               [&] {
                 return absl::StrFormat(
                     "node %d entries [%d, %d]%s", node,
                     entries.empty() ? 0 : entries.front().index,
                     entries.empty() ? 0 : entries.back().index,
                     hs.has_value() ? " hard state " + consensus::DebugString(*hs) : "");
               });
}

void Simulator::OnApplied(NodeId node, const consensus::Entry& entry,
                          const std::vector<AppliedCommand>& commands, const KvStateMachine& sm) {
  checker_.OnApplied(node, entry, commands, sm);
  for (const AppliedCommand& a : commands) {
    if (a.outcome != ApplyOutcome::kExecuted) {
      ++stats_.commands_deduplicated;
    } else {
      effects_.emplace(std::make_pair(a.command.client, a.command.seq),
                       Effect{now_us_, a.result});
    }
  }
  trace_.Event(now_us_, "apply", {node, entry.index, entry.term, commands.size(), sm.DataHash()},
               [&] {
                 std::vector<std::string> parts;
                 for (const AppliedCommand& a : commands) {
                   parts.push_back(absl::StrCat(DescribeCommand(a.command),
                                                a.outcome == ApplyOutcome::kExecuted ? ""
                                                : a.outcome == ApplyOutcome::kDuplicate
                                                    ? " (duplicate)"
                                                    : " (stale)"));
                 }
                 return absl::StrFormat("node %d entry %d term %d [%s] hash %016x", node,
                                        entry.index, entry.term, absl::StrJoin(parts, ", "),
                                        sm.DataHash());
               });
}

void Simulator::OnSoftState(NodeId node, const consensus::SoftState& ss, consensus::Term term) {
  trace_.Event(now_us_, "role", {node, term, static_cast<uint64_t>(ss.role), ss.leader}, [&] {
    return absl::StrFormat("node %d is %s in term %d (leader %d)", node, RoleShort(ss.role), term,
                           ss.leader);
  });
}

void Simulator::OnSnapshotInstalled(NodeId node, const consensus::SnapshotMeta& meta,
                                    const KvStateMachine& sm) {
  checker_.OnSnapshotInstalled(node, meta, sm);
  ++stats_.snapshots_installed;
  trace_.Event(now_us_, "install", {node, meta.index, meta.term, meta.bytes, sm.DataHash()}, [&] {
    return absl::StrFormat("node %d installs snapshot %s", node, consensus::DebugString(meta));
  });
}

void Simulator::OnCompacted(NodeId node, const consensus::SnapshotMeta& meta,
                            consensus::Index first_index) {
  ++stats_.compactions;
  trace_.Event(now_us_, "compact", {node, meta.index, meta.term, meta.bytes, first_index}, [&] {
    return absl::StrFormat("node %d snapshot %s, log from %d", node, consensus::DebugString(meta),
                           first_index);
  });
}

void Simulator::OnClientRequest(NodeId node, const Command& c) {
  trace_.Event(now_us_, "request", {node, c.client, c.seq},
               [&] { return absl::StrCat("node ", node, " <- ", DescribeCommand(c)); });
}

void Simulator::OnClientReply(NodeId node, const Reply& r) {
  trace_.Event(now_us_, "answer", {node, r.client, r.seq, static_cast<uint64_t>(r.status)}, [&] {
    return absl::StrFormat("node %d -> client %d #%d %s", node, r.client, r.seq,
                           ReplyStatusName(r.status));
  });
}

// ------------------------------------------------------------ set-up

SimLogOptions Simulator::LogOptions(const SimNode& n) const {
  SimLogOptions l;
  l.cluster_id = kClusterId;
  l.node = n.id;
  l.ring_bytes = o_.log_ring_bytes;
  l.seed = SubSeed(o_.seed, kStreamPmem, n.id, n.incarnation);
  l.evict_probability = o_.faults.evict_probability;
  l.entries_before_term = o_.entries_before_term;
  return l;
}

DriverOptions Simulator::DriverOptionsFor(const SimNode& n) const {
  DriverOptions d;
  d.id = n.id;
  // Spares wait to be added: no bootstrap membership of their own.
  if (std::find(initial_voters_.begin(), initial_voters_.end(), n.id) != initial_voters_.end()) {
    d.members = initial_voters_;
  }
  d.client_id_min = kClientIdBase;
  d.raft.election_timeout_ticks = o_.election_timeout_ticks;
  d.raft.heartbeat_interval_ticks = o_.heartbeat_interval_ticks;
  d.raft.random_seed = SubSeed(o_.seed, kStreamRaft, n.id, n.incarnation) | 1;
  d.raft.lease_reads = o_.lease_reads;
  // A leader that cannot commit stops taking proposals well before its
  // log's ring is full (pmemlog refuses appends beyond it).
  d.raft.uncommitted_bytes_max = o_.log_ring_bytes / 4;
  // Small chunks, so that snapshots take several messages.
  d.raft.snapshot_chunk_bytes = 512;
  d.compact_every_entries = o_.compact_every_entries;
  d.compact_keep_entries = o_.compact_keep_entries;
  d.tick_before_poll = o_.lease_reads && !o_.lease_with_server_clock;
  d.bugs = o_.bugs.driver;
  return d;
}

bool Simulator::StartNode(SimNode& n, std::unique_ptr<SimLogStorage> log) {
  std::vector<NodeId> peers;
  for (NodeId id : all_ids_) {
    if (id != n.id) peers.push_back(id);
  }
  for (int c = 0; c < o_.clients; ++c) peers.push_back(kClientIdBase + 1 + c);
  absl::StatusOr<std::unique_ptr<transport::Transport>> endpoint =
      network_->CreateEndpoint(n.id, peers, kClusterId);
  ABSL_RAW_CHECK(endpoint.ok(), "creating a node endpoint failed");
  n.log = std::move(log);
  n.endpoint = std::move(*endpoint);
  absl::StatusOr<std::unique_ptr<NodeDriver>> driver =
      NodeDriver::Start(DriverOptionsFor(n), n.log.get(), n.sm.get(), &n.snapshots,
                        n.endpoint.get(), this);
  if (!driver.ok()) {
    checker_.Fail("restart", absl::StrFormat("node %d cannot start: %s", n.id,
                                             driver.status().ToString()));
    n.endpoint.reset();
    n.log.reset();
    return false;
  }
  n.driver = std::move(*driver);
  n.up = true;
  n.restart_at_us = kNever;
  n.paused_until_us = 0;
  const double skew = (2 * tick_random_.NextDouble() - 1) * o_.faults.clock_drift;
  n.tick_period_us = std::max<int64_t>(1, static_cast<int64_t>(o_.tick_us * (1 + skew)));
  n.next_tick_us = now_us_ + static_cast<int64_t>(tick_random_.Uniform(1, n.tick_period_us));
  return true;
}

void Simulator::Init() {
  transport::SimOptions net;
  net.drop_probability = o_.faults.drop_probability;
  net.duplicate_probability = o_.faults.duplicate_probability;
  net.reorder_probability = o_.faults.reorder_probability;
  net.delay_us_min = o_.faults.delay_us_min;
  net.delay_us_max = o_.faults.delay_us_max;
  net.reorder_delay_us_max = o_.faults.reorder_delay_us_max;
  network_ = std::make_unique<transport::SimNetwork>(SubSeed(o_.seed, kStreamNetwork), net);

  for (int i = 1; i <= o_.nodes + o_.spare_nodes; ++i) all_ids_.push_back(static_cast<NodeId>(i));
  initial_voters_.assign(all_ids_.begin(), all_ids_.begin() + o_.nodes);
  KvStateMachineOptions sm_options;
  sm_options.sessions_durable = !o_.bugs.volatile_sessions;
  sm_options.deduplicate = !o_.bugs.no_dedup;
  nodes_.resize(all_ids_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    SimNode& n = nodes_[i];
    n.id = all_ids_[i];
    n.sm = std::make_unique<KvStateMachine>(sm_options);
    absl::StatusOr<std::unique_ptr<SimLogStorage>> log =
        SimLogStorage::CreateEmpty(LogOptions(n), &n.snapshots);
    ABSL_RAW_CHECK(log.ok(), "creating a simulated log failed");
    if (!StartNode(n, std::move(*log))) return;
    trace_.Event(now_us_, "start", {n.id}, [&] { return absl::StrCat("node ", n.id, " up"); });
  }
  for (int c = 0; c < o_.clients; ++c) {
    ClientOptions co;
    co.id = kClientIdBase + 1 + c;
    co.nodes = all_ids_;
    co.keys = o_.keys;
    co.timeout_us = o_.client_timeout_us;
    co.attempts_max = o_.client_attempts_max;
    co.think_us_max = o_.client_think_us_max;
    co.mix = o_.mix;
    absl::StatusOr<std::unique_ptr<transport::Transport>> endpoint =
        network_->CreateEndpoint(co.id, all_ids_, kClusterId);
    ABSL_RAW_CHECK(endpoint.ok(), "creating a client endpoint failed");
    client_endpoints_.push_back(std::move(*endpoint));
    clients_.push_back(std::make_unique<SimClient>(co, SubSeed(o_.seed, kStreamClient, co.id),
                                                   client_endpoints_.back().get(), &trace_));
  }
  if (o_.faults.nemesis_interval_us_mean > 0) {
    next_fault_us_ = static_cast<int64_t>(nemesis_random_.Uniform(
        1, 2 * static_cast<uint64_t>(o_.faults.nemesis_interval_us_mean)));
  }
}

// ------------------------------------------------------------ faults

SimNode* Simulator::RandomUpNode() {
  std::vector<SimNode*> up;
  for (SimNode& n : nodes_) {
    if (n.up) up.push_back(&n);
  }
  if (up.empty()) return nullptr;
  return up[nemesis_random_.Uniform(0, up.size() - 1)];
}

std::vector<NodeId> Simulator::RandomGroup() {
  // A nonempty proper subset of the nodes.
  const uint64_t all = (uint64_t{1} << all_ids_.size()) - 1;
  const uint64_t mask = nemesis_random_.Uniform(1, all - 1);
  std::vector<NodeId> group;
  for (size_t i = 0; i < all_ids_.size(); ++i) {
    if (mask & (uint64_t{1} << i)) group.push_back(all_ids_[i]);
  }
  return group;
}

void Simulator::Schedule(int64_t at_us, std::function<void()> action) {
  scheduled_.emplace(at_us, std::move(action));
}

void Simulator::RunScheduled() {
  while (!scheduled_.empty() && scheduled_.begin()->first <= now_us_) {
    std::function<void()> action = std::move(scheduled_.begin()->second);
    scheduled_.erase(scheduled_.begin());
    action();
  }
}

void Simulator::Nemesis() {
  if (now_us_ < next_fault_us_) return;
  next_fault_us_ = now_us_ + static_cast<int64_t>(nemesis_random_.Uniform(
                                 1, 2 * static_cast<uint64_t>(o_.faults.nemesis_interval_us_mean)));
  int total = 0;
  for (int w : o_.faults.weights) total += w;
  if (total <= 0) return;
  uint64_t roll = nemesis_random_.Uniform(0, static_cast<uint64_t>(total) - 1);
  FaultAction action = FaultAction::kHeal;
  for (int a = 0; a < static_cast<int>(FaultAction::kActionCount); ++a) {
    if (roll < static_cast<uint64_t>(o_.faults.weights[a])) {
      action = static_cast<FaultAction>(a);
      break;
    }
    roll -= static_cast<uint64_t>(o_.faults.weights[a]);
  }
  ++stats_.fault_actions;
  const auto until = [this](int64_t max_us) {
    return now_us_ + static_cast<int64_t>(nemesis_random_.Uniform(1, static_cast<uint64_t>(max_us)));
  };
  switch (action) {
    case FaultAction::kCrash: {
      SimNode* n = RandomUpNode();
      if (n == nullptr) return;
      if (nemesis_random_.Chance(o_.faults.crash_point_probability)) {
        if (n->driver->crash_armed()) return;
        const uint64_t events = nemesis_random_.Uniform(1, o_.faults.crash_point_events_max);
        const bool torn = nemesis_random_.Chance(o_.faults.torn_probability);
        n->driver->ArmCrash(events, torn ? pmemlog::CrashMode::kTorn
                                         : pmemlog::CrashMode::kPersistedOnly);
        trace_.Event(now_us_, "nemesis", {0, n->id, events, torn ? 1u : 0u}, [&] {
          return absl::StrFormat("node %d will lose power at its %d-th event from now (%s)", n->id,
                                 events, torn ? "torn" : "persisted only");
        });
        return;
      }
      PowerFail(*n);
      return;
    }
    case FaultAction::kPowerLoss:
      trace_.Event(now_us_, "nemesis", {1}, [] { return std::string("power loss: every node"); });
      for (SimNode& n : nodes_) {
        if (n.up) PowerFail(n);
      }
      return;
    case FaultAction::kPartition: {
      if (all_ids_.size() < 2) return;
      const std::vector<NodeId> a = RandomGroup();
      std::vector<NodeId> b;
      for (NodeId id : all_ids_) {
        if (std::find(a.begin(), a.end(), id) == a.end()) b.push_back(id);
      }
      network_->Partition(a, b);
      trace_.Event(now_us_, "nemesis", {2, a.size(), a.front()}, [&] {
        return absl::StrCat("partition {", absl::StrJoin(a, ","), "} | {", absl::StrJoin(b, ","),
                            "}");
      });
      Schedule(until(o_.faults.partition_us_max), [this, a, b] {
        for (NodeId x : a) {
          for (NodeId y : b) {
            network_->Heal(x, y);
            network_->Heal(y, x);
          }
        }
        trace_.Event(now_us_, "heal", {2, a.size(), a.front()}, [&] {
          return absl::StrCat("partition {", absl::StrJoin(a, ","), "} healed");
        });
      });
      return;
    }
    case FaultAction::kCutLink: {
      const NodeId from = all_ids_[nemesis_random_.Uniform(0, all_ids_.size() - 1)];
      const NodeId to = all_ids_[nemesis_random_.Uniform(0, all_ids_.size() - 1)];
      if (from == to) return;
      network_->Cut(from, to);
      trace_.Event(now_us_, "nemesis", {3, from, to},
                   [&] { return absl::StrFormat("cut link %d -> %d", from, to); });
      Schedule(until(o_.faults.partition_us_max), [this, from, to] {
        network_->Heal(from, to);
        trace_.Event(now_us_, "heal", {3, from, to},
                     [&] { return absl::StrFormat("link %d -> %d healed", from, to); });
      });
      return;
    }
    case FaultAction::kIsolate: {
      const NodeId id = all_ids_[nemesis_random_.Uniform(0, all_ids_.size() - 1)];
      network_->Isolate(id);
      trace_.Event(now_us_, "nemesis", {4, id},
                   [&] { return absl::StrFormat("isolate node %d", id); });
      Schedule(until(o_.faults.partition_us_max), [this, id] {
        network_->Rejoin(id);
        trace_.Event(now_us_, "heal", {4, id},
                     [&] { return absl::StrFormat("node %d rejoins", id); });
      });
      return;
    }
    case FaultAction::kPause: {
      SimNode* n = RandomUpNode();
      if (n == nullptr) return;
      n->paused_until_us = std::max(n->paused_until_us, until(o_.faults.pause_us_max));
      trace_.Event(now_us_, "nemesis", {5, n->id, static_cast<uint64_t>(n->paused_until_us)}, [&] {
        return absl::StrFormat("node %d stalls until %.3f ms", n->id, n->paused_until_us / 1000.0);
      });
      return;
    }
    case FaultAction::kHeal:
      network_->HealAll();
      trace_.Event(now_us_, "nemesis", {6}, [] { return std::string("heal every link"); });
      return;
    case FaultAction::kTransferLeadership:
      TransferLeadership();
      return;
    case FaultAction::kMembershipChange:
      ChangeMembership();
      return;
    case FaultAction::kActionCount:
      break;
  }
}

SimNode* Simulator::CurrentLeader() {
  SimNode* leader = nullptr;
  for (SimNode& n : nodes_) {
    if (n.up && n.driver->raft().role() == consensus::Role::kLeader &&
        (leader == nullptr || n.driver->raft().term() > leader->driver->raft().term())) {
      leader = &n;
    }
  }
  return leader;
}

void Simulator::TransferLeadership() {
  SimNode* leader = CurrentLeader();
  if (leader == nullptr) return;
  const std::vector<NodeId>& voters = leader->driver->raft().membership().voters;
  const NodeId target = voters[nemesis_random_.Uniform(0, voters.size() - 1)];
  const absl::Status s = leader->driver->mutable_raft().TransferLeadership(target);
  if (s.ok()) ++stats_.transfers;
  trace_.Event(now_us_, "nemesis", {7, leader->id, target, s.ok() ? 1u : 0u}, [&] {
    return absl::StrFormat("node %d transfers leadership to %d: %s", leader->id, target,
                           s.ToString());
  });
}

void Simulator::ChangeMembership() {
  SimNode* leader = CurrentLeader();
  if (leader == nullptr) return;
  consensus::Raft& raft = leader->driver->mutable_raft();
  const consensus::Membership m = raft.membership();
  consensus::MembershipChange change;
  // Promote a learner that has caught up; else remove a voter (never below
  // the initial group size, at most 3) or add a node from outside.
  std::vector<NodeId> ready_learners;
  for (NodeId l : m.learners) {
    if (raft.match_index(l) >= raft.commit_index()) ready_learners.push_back(l);
  }
  std::vector<NodeId> outside;
  for (NodeId id : all_ids_) {
    if (!m.IsMember(id)) outside.push_back(id);
  }
  const size_t voters_min = std::min<size_t>(3, initial_voters_.size());
  if (!ready_learners.empty()) {
    change = {consensus::MembershipChangeType::kAddVoter,
              ready_learners[nemesis_random_.Uniform(0, ready_learners.size() - 1)]};
  } else if (m.voters.size() > voters_min && (outside.empty() || nemesis_random_.Chance(0.5))) {
    change = {consensus::MembershipChangeType::kRemoveNode,
              m.voters[nemesis_random_.Uniform(0, m.voters.size() - 1)]};
  } else if (!outside.empty()) {
    change = {consensus::MembershipChangeType::kAddLearner,
              outside[nemesis_random_.Uniform(0, outside.size() - 1)]};
  } else {
    return;
  }
  absl::StatusOr<consensus::Index> index = raft.ProposeMembershipChange(change);
  if (index.ok()) ++stats_.membership_changes;
  static constexpr const char* kNames[] = {"add learner", "add voter", "remove"};
  trace_.Event(now_us_, "nemesis",
               {8, leader->id, static_cast<uint64_t>(change.type), change.node,
                index.ok() ? *index : 0},
               [&] {
                 return absl::StrFormat("leader %d proposes: %s %d (%s): %s", leader->id,
                                        kNames[static_cast<int>(change.type)], change.node,
                                        consensus::DebugString(m),
                                        index.ok() ? absl::StrCat("index ", *index)
                                                   : index.status().ToString());
               });
}

void Simulator::PowerFail(SimNode& n) {
  const bool torn = nemesis_random_.Chance(o_.faults.torn_probability);
  CrashNode(n, n.log->CrashImage(torn ? pmemlog::CrashMode::kTorn : pmemlog::CrashMode::kPersistedOnly),
            torn ? "power failure (torn)" : "power failure");
  if (torn) ++stats_.torn_crashes;
}

void Simulator::CrashNode(SimNode& n, std::vector<uint8_t> image, const char* how) {
  ABSL_RAW_CHECK(n.up, "crashing a node that is down");
  ++stats_.crashes;
  trace_.Event(now_us_, "crash", {n.id, n.incarnation, n.sm->applied_index()}, [&] {
    return absl::StrFormat("node %d: %s; applied index %d survives", n.id, how,
                           n.sm->applied_index());
  });
  n.driver.reset();
  n.endpoint.reset();
  n.log.reset();
  n.image = std::move(image);
  n.sm->Crash();
  n.up = false;
  n.paused_until_us = 0;
  n.restart_at_us = now_us_ + static_cast<int64_t>(nemesis_random_.Uniform(
                                   1, static_cast<uint64_t>(o_.faults.down_us_max)));
}

void Simulator::RestartNode(SimNode& n) {
  ABSL_RAW_CHECK(!n.up, "restarting a node that is up");
  ++n.incarnation;
  ++stats_.restarts;
  absl::StatusOr<std::unique_ptr<SimLogStorage>> log =
      SimLogStorage::Recover(LogOptions(n), n.image, &n.snapshots);
  if (!log.ok()) {
    checker_.Fail("recovery", absl::StrFormat("node %d: pmemlog recovery of its crash image "
                                              "failed: %s",
                                              n.id, log.status().ToString()));
    return;
  }
  checker_.OnRecovered(n.id, **log);
  const consensus::HardState hs = (*log)->InitialHardState();
  trace_.Event(now_us_, "restart",
               {n.id, n.incarnation, (*log)->LastIndex(), hs.term, hs.vote, hs.commit,
                n.sm->applied_index()},
               [&] {
                 return absl::StrFormat("node %d recovered log [%d, %d] %s applied %d", n.id,
                                        (*log)->FirstIndex(), (*log)->LastIndex(),
                                        consensus::DebugString(hs), n.sm->applied_index());
               });
  n.image.clear();
  n.image.shrink_to_fit();
  StartNode(n, std::move(*log));
}

void Simulator::StopFaults() {
  next_fault_us_ = kNever;
  scheduled_.clear();
  network_->HealAll();
  transport::SimOptions net = network_->options();
  net.drop_probability = 0;
  net.duplicate_probability = 0;
  net.reorder_probability = 0;
  ABSL_RAW_CHECK(network_->set_options(net).ok(), "quiet network options");
  for (SimNode& n : nodes_) {
    if (n.up) {
      n.paused_until_us = 0;
      n.driver->DisarmCrash();
    } else {
      n.restart_at_us = now_us_;
    }
  }
  trace_.Event(now_us_, "quiet", {}, [] {
    return std::string("faults stop: links healed, no loss, every node restarts");
  });
}

// ------------------------------------------------------------ the loop

int64_t Simulator::NextEventUs(bool faulty) const {
  int64_t next = next_fault_us_;
  if (!scheduled_.empty()) next = std::min(next, scheduled_.begin()->first);
  const std::optional<int64_t> delivery = network_->NextDeliveryUs();
  if (delivery.has_value()) {
    next = std::min(next, *delivery > now_us_ ? *delivery : now_us_ + kPausedQuantumUs);
  }
  for (const SimNode& n : nodes_) {
    if (!n.up) {
      next = std::min(next, n.restart_at_us);
    } else if (n.paused_until_us > now_us_) {
      next = std::min(next, n.paused_until_us);
    } else {
      next = std::min(next, n.next_tick_us);
    }
  }
  for (const auto& c : clients_) {
    if (c->busy() || faulty) next = std::min(next, c->NextWakeUs());
  }
  return std::max(next, now_us_ + 1);
}

void Simulator::RunNode(SimNode& n) {
  if (!n.up || n.paused_until_us > now_us_) return;
  int ticks = 0;
  while (n.next_tick_us <= now_us_) {
    ++ticks;
    n.next_tick_us += n.tick_period_us;
  }
  // The server drops ticks beyond a few after a stall; lease reads need
  // every one caught up (consensus/raft.h's clock assumption).
  const absl::Status s =
      n.driver->Iterate(o_.lease_reads && !o_.lease_with_server_clock
                            ? ticks
                            : std::min(ticks, kTicksPerIterationMax));
  if (absl::IsAborted(s) && n.driver->crashed()) {
    ++stats_.crash_points;
    CrashNode(n, n.driver->TakeCrashImage(), "power failure at a crash point");
    return;
  }
  if (!s.ok()) {
    checker_.Fail("node-stopped", absl::StrFormat("node %d stopped: %s (%s)", n.id, s.ToString(),
                                                  n.driver->raft().DebugString()));
    return;
  }
  checker_.OnNodeState(n.id, n.driver->raft());
}

void Simulator::RunClients(bool issue) {
  for (auto& c : clients_) {
    c->Step(now_us_, issue);
    if (c->failure().has_value() && !failed()) checker_.Fail("session", *c->failure());
  }
}

void Simulator::Step(bool faulty) {
  now_us_ = NextEventUs(faulty);
  network_->AdvanceTo(now_us_);
  if (faulty) Nemesis();
  RunScheduled();
  for (SimNode& n : nodes_) {
    if (!n.up && n.restart_at_us <= now_us_) RestartNode(n);
    if (failed()) return;
  }
  for (SimNode& n : nodes_) {
    RunNode(n);
    if (failed()) return;
  }
  RunClients(faulty);
}

std::vector<NodeId> Simulator::FinalMembers() const {
  for (const SimNode& n : nodes_) {
    if (n.up && n.driver->raft().role() == consensus::Role::kLeader) {
      const consensus::Membership& m = n.driver->raft().membership();
      std::vector<NodeId> members = m.voters;
      members.insert(members.end(), m.learners.begin(), m.learners.end());
      std::sort(members.begin(), members.end());
      return members;
    }
  }
  return {};
}

// Every client idle, one leader, and every member of its group up, on its
// term, with everything committed and applied. Nodes outside the group
// (spares never added, removed nodes) are not waited for.
bool Simulator::Converged() const {
  for (const auto& c : clients_) {
    if (c->busy()) return false;
  }
  const SimNode* leader = nullptr;
  for (const SimNode& n : nodes_) {
    if (!n.up) return false;  // Members or not: every log is checked at the end.
    if (n.driver->raft().role() == consensus::Role::kLeader) {
      if (leader != nullptr) return false;
      leader = &n;
    }
  }
  if (leader == nullptr) return false;
  const consensus::Raft& l = leader->driver->raft();
  if (l.commit_index() != l.last_index() || l.transfer_target() != consensus::kNoNode) {
    return false;
  }
  for (NodeId id : FinalMembers()) {
    const SimNode& n = nodes_[id - 1];
    if (!n.up) return false;
    const consensus::Raft& r = n.driver->raft();
    if (r.leader() != leader->id || r.commit_index() != l.commit_index() ||
        n.sm->applied_index() != l.commit_index() || r.last_index() != l.last_index() ||
        !(r.membership() == l.membership())) {
      return false;
    }
  }
  return true;
}

std::string Simulator::DescribeCluster() const {
  std::vector<std::string> lines;
  for (const SimNode& n : nodes_) {
    lines.push_back(n.up ? absl::StrCat(n.driver->raft().DebugString(), " sm-applied=",
                                        n.sm->applied_index())
                         : absl::StrCat("node ", n.id, " down"));
  }
  for (const auto& c : clients_) {
    if (c->busy()) lines.push_back(absl::StrCat("client ", c->id(), " busy"));
  }
  return absl::StrJoin(lines, "; ");
}

void Simulator::FinalChecks() {
  std::map<NodeId, const consensus::LogStorage*> logs;
  for (const SimNode& n : nodes_) {
    ABSL_RAW_CHECK(n.up, "final checks with a node down");
    logs[n.id] = n.log.get();
  }
  checker_.CheckLogMatching(logs);
  if (failed()) return;
  const std::vector<NodeId> members = FinalMembers();
  const SimNode& first = nodes_[members.front() - 1];
  for (NodeId id : members) {
    const SimNode& n = nodes_[id - 1];
    if (n.sm->DataHash() != first.sm->DataHash() ||
        n.sm->SessionsHash() != first.sm->SessionsHash()) {
      checker_.Fail("replicas-equal",
                    absl::StrFormat("node %d and node %d differ at applied index %d", n.id,
                                    first.id, n.sm->applied_index()));
      return;
    }
  }
  std::vector<std::pair<uint64_t, uint64_t>> acked;
  for (const auto& c : clients_) {
    acked.insert(acked.end(), c->acked_writes().begin(), c->acked_writes().end());
  }
  checker_.CheckAcknowledged(acked, members);
  if (failed()) return;
  CheckHistory();
}

// The clients' history, checked by tools/lincheck per key.
//
// Unknown outcomes make the search exponential (each may or may not have
// taken effect, anywhere after its call), so the simulator uses what it
// knows as the omniscient observer, soundly:
//  1. An unknown write that no replica ever executed never took effect (the
//     cluster has converged, so it never will within this run): dropped.
//  2. After convergence, one read per key of the final state is added (a
//     client reading after everything): it must be explained too.
//  3. Only if the search exceeds its budget: each remaining unknown write
//     becomes known, with the result its execution gave and a return time
//     of its first application anywhere (its real linearization point, the
//     commit, lies between its call and that moment).
void Simulator::CheckHistory() {
  constexpr uint64_t kFirstPassSteps = 2'000'000;
  std::vector<lincheck::Operation> history;
  std::vector<std::optional<Effect>> effects;  // For unknown writes.
  for (const auto& c : clients_) {
    for (size_t i = 0; i < c->history().size(); ++i) {
      const lincheck::Operation& op = c->history()[i];
      if (!op.known && op.kind != lincheck::OpKind::kGet) {
        auto it = effects_.find({c->id(), c->history_seqs()[i]});
        if (it == effects_.end()) {
          ++stats_.unknown_never_applied;
          continue;
        }
        effects.push_back(it->second);
      } else {
        effects.push_back(std::nullopt);
      }
      history.push_back(op);
    }
  }
  const KvStateMachine& final_state = *nodes_[FinalMembers().front() - 1].sm;
  for (int k = 0; k < o_.keys; ++k) {
    lincheck::Operation read;
    read.client = kClientIdBase;  // Not a simulated client's id.
    read.kind = lincheck::OpKind::kGet;
    read.key = absl::StrCat("k", k);
    const CommandResult r = final_state.Read(read.key);
    if (r.ok) read.output_value = r.value;
    read.call_time = now_us_ + 1;
    read.return_time = now_us_ + 2;
    history.push_back(read);
    effects.push_back(std::nullopt);
  }
  lincheck::CheckOptions options;
  options.steps_per_key_max = kFirstPassSteps;
  absl::StatusOr<lincheck::CheckResult> r = lincheck::CheckHistory(history, options);
  if (absl::IsDeadlineExceeded(r.status())) {
    ++stats_.lincheck_resolved;
    for (size_t i = 0; i < history.size(); ++i) {
      if (!effects[i].has_value()) continue;
      lincheck::Operation& op = history[i];
      op.known = true;
      op.return_time = effects[i]->applied_us;
      op.output_ok = effects[i]->result.ok;
    }
    r = lincheck::CheckHistory(history);
  }
  if (!r.ok()) {
    checker_.Fail("linearizability", absl::StrCat("the checker gave no verdict: ",
                                                  r.status().ToString()));
    return;
  }
  if (!r->linearizable) {
    checker_.Fail("linearizability",
                  absl::StrCat("key ", r->key, " is not linearizable:\n", r->explanation));
  }
}

SimulationResult Simulator::Run() {
  trace_.Note(absl::StrFormat("# blizzard_sim seed=%d nodes=%d clients=%d keys=%d steps=%d",
                              o_.seed, o_.nodes, o_.clients, o_.keys, o_.steps));
  Init();
  int64_t step = 0;
  for (; step < o_.steps && !failed(); ++step) Step(true);
  stats_.steps = step;
  if (!failed()) {
    StopFaults();
    const int64_t deadline_us = now_us_ + o_.converge_us_max;
    while (!failed() && !Converged()) {
      if (now_us_ > deadline_us) {
        checker_.Fail("liveness",
                      absl::StrFormat("no convergence %d ms after the faults stopped: %s",
                                      o_.converge_us_max / 1000, DescribeCluster()));
        break;
      }
      Step(false);
      ++stats_.converge_steps;
    }
  }
  if (!failed()) FinalChecks();
  return Result();
}

SimulationResult Simulator::Result() {
  SimulationResult r;
  r.seed = o_.seed;
  r.ok = !failed();
  if (!r.ok) {
    r.check = checker_.first().check;
    r.detail = checker_.first().detail;
  }
  stats_.sim_us = now_us_;
  for (const auto& c : clients_) {
    stats_.ops_ok += c->stats().ops_ok;
    stats_.ops_unknown += c->stats().ops_unknown;
  }
  stats_.terms_with_leader = checker_.leaders_seen();
  stats_.entries_committed = checker_.commit_known();
  stats_.messages_sent = network_->stats().sent;
  stats_.messages_delivered = network_->stats().delivered;
  r.stats = stats_;
  // The final state joins the trace: equal hashes mean equal runs.
  trace_.Event(now_us_, "end", {r.ok ? 1u : 0u, stats_.entries_committed, stats_.ops_ok},
               [&] { return r.ok ? std::string("all checks passed") : r.check + ": " + r.detail; });
  r.trace_hash = trace_.hash();
  return r;
}

}  // namespace

const char* FaultActionName(FaultAction action) {
  switch (action) {
    case FaultAction::kCrash: return "crash";
    case FaultAction::kPowerLoss: return "power-loss";
    case FaultAction::kPartition: return "partition";
    case FaultAction::kCutLink: return "cut-link";
    case FaultAction::kIsolate: return "isolate";
    case FaultAction::kPause: return "pause";
    case FaultAction::kHeal: return "heal";
    case FaultAction::kTransferLeadership: return "transfer-leadership";
    case FaultAction::kMembershipChange: return "membership-change";
    case FaultAction::kActionCount: break;
  }
  return "?";
}

absl::Status ValidateSimulatorOptions(const SimulatorOptions& o) {
  const FaultOptions& f = o.faults;
  if (o.nodes < 1 || o.spare_nodes < 0 || o.nodes + o.spare_nodes > 7) {
    return absl::InvalidArgumentError("need 1 <= nodes and nodes + spare_nodes <= 7");
  }
  if (o.clients < 1 || o.clients > 64) {
    return absl::InvalidArgumentError("clients must be in [1, 64]");
  }
  if (o.keys < 1 || o.keys > 1000) return absl::InvalidArgumentError("keys must be in [1, 1000]");
  if (o.steps < 0 || o.tick_us < 1 || o.converge_us_max < 1) {
    return absl::InvalidArgumentError("steps >= 0, tick_us >= 1, converge_us_max >= 1");
  }
  if (o.election_timeout_ticks < 2 || o.heartbeat_interval_ticks < 1 ||
      o.heartbeat_interval_ticks >= o.election_timeout_ticks) {
    return absl::InvalidArgumentError(
        "need 1 <= heartbeat_interval_ticks < election_timeout_ticks");
  }
  if (o.client_timeout_us < 1 || o.client_attempts_max < 1 || o.client_think_us_max < 0) {
    return absl::InvalidArgumentError("client timeout and attempts must be positive");
  }
  if (f.delay_us_min < 1 || f.delay_us_max < f.delay_us_min || f.reorder_delay_us_max < 0) {
    return absl::InvalidArgumentError("need 1 <= delay_us_min <= delay_us_max");
  }
  for (double p : {f.drop_probability, f.duplicate_probability, f.reorder_probability,
                   f.torn_probability, f.crash_point_probability, f.evict_probability,
                   f.clock_drift}) {
    if (!(p >= 0.0 && p <= 1.0)) return absl::InvalidArgumentError("probabilities in [0, 1]");
  }
  for (int w : f.weights) {
    if (w < 0) return absl::InvalidArgumentError("fault weights must be >= 0");
  }
  if (f.nemesis_interval_us_mean < 0 || f.crash_point_events_max < 1 || f.down_us_max < 1 ||
      f.partition_us_max < 1 || f.pause_us_max < 1) {
    return absl::InvalidArgumentError("fault durations must be positive");
  }
  if (o.lease_reads && (o.election_timeout_ticks <= 2 || f.clock_drift > 0.05)) {
    return absl::InvalidArgumentError(
        "lease reads need election_timeout_ticks > 2 and clock_drift <= 0.05 (the margin of 2 "
        "ticks must cover the drift)");
  }
  if (o.log_ring_bytes < 4096 || o.log_ring_bytes % 64 != 0) {
    return absl::InvalidArgumentError("log_ring_bytes: a multiple of 64, at least 4096");
  }
  return absl::OkStatus();
}

SimulatorOptions SwarmOptions(uint64_t seed, const SimulatorOptions& base) {
  SimulatorOptions o = base;
  o.seed = seed;
  SplitMix64 r(SubSeed(seed, kStreamSwarm));
  const auto pick = [&r](std::initializer_list<double> values) {
    const uint64_t i = r.Uniform(0, values.size() - 1);
    return *(values.begin() + i);
  };
  o.nodes = static_cast<int>(r.Uniform(3, 7));
  o.spare_nodes = static_cast<int>(r.Uniform(0, static_cast<uint64_t>(7 - o.nodes)));
  o.clients = static_cast<int>(r.Uniform(1, 8));
  o.keys = static_cast<int>(r.Uniform(1, 5));
  FaultOptions& f = o.faults;
  f.drop_probability = pick({0.0, 0.01, 0.05, 0.1});
  f.duplicate_probability = pick({0.0, 0.01, 0.05});
  f.reorder_probability = pick({0.0, 0.05, 0.2});
  f.delay_us_max = static_cast<int64_t>(pick({300, 1500, 5000}));
  f.reorder_delay_us_max = static_cast<int64_t>(pick({1000, 5000, 20000}));
  f.nemesis_interval_us_mean = static_cast<int64_t>(pick({0, 10'000, 30'000, 100'000}));
  for (int& w : f.weights) w = static_cast<int>(r.Uniform(0, 4));
  f.torn_probability = pick({0.0, 0.5, 1.0});
  f.crash_point_probability = pick({0.3, 0.7, 1.0});
  f.evict_probability = pick({0.0, 0.05, 0.3});
  f.clock_drift = pick({0.0, 0.01, 0.05});
  // Snapshots: often, with a small ring so that pmemlog's ring wraps.
  o.compact_every_entries = static_cast<uint64_t>(pick({0, 20, 100}));
  o.compact_keep_entries = static_cast<uint64_t>(pick({0, 5, 50}));
  if (o.compact_every_entries > 0 && r.Chance(0.5)) o.log_ring_bytes = 128u << 10;
  o.lease_reads = r.Chance(0.3);
  return o;
}

std::string SimulationResult::Summary() const {
  if (!ok) return absl::StrFormat("seed=%d FAILED check=%s: %s", seed, check, detail);
  return absl::StrFormat(
      "seed=%d ok: %d steps, %.1f ms simulated, %d terms with a leader, %d entries committed, "
      "%d ops ok, %d unknown, %d crashes (%d at crash points, %d torn), %d restarts, %d faults, "
      "%d deduplicated, %d snapshots installed, %d compactions, %d membership changes, "
      "%d transfers, trace %016x",
      seed, stats.steps, stats.sim_us / 1000.0, stats.terms_with_leader, stats.entries_committed,
      stats.ops_ok, stats.ops_unknown, stats.crashes, stats.crash_points, stats.torn_crashes,
      stats.restarts, stats.fault_actions, stats.commands_deduplicated, stats.snapshots_installed,
      stats.compactions, stats.membership_changes, stats.transfers, trace_hash);
}

SimulationResult RunSimulation(const SimulatorOptions& options) {
  if (absl::Status s = ValidateSimulatorOptions(options); !s.ok()) {
    SimulationResult r;
    r.seed = options.seed;
    r.ok = false;
    r.check = "options";
    r.detail = std::string(s.message());
    return r;
  }
  Simulator simulator(options);
  return simulator.Run();
}

}  // namespace blizzard::sim
