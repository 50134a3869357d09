#include "tools/sim/node_driver.h"

#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tools/sim/safety_checker.h"
#include "transport/sim/sim_network.h"

namespace blizzard::sim {
namespace {

using consensus::NodeId;

constexpr uint64_t kClient = 1001;
constexpr int64_t kTickUs = 1000;

// Feeds a SafetyChecker and counts what it sees.
class TestObserver : public NodeObserver {
 public:
  void OnSend(NodeId node, const consensus::Message& m, const SimLogStorage& durable) override {
    checker.OnSend(node, m, durable);
  }
  void OnPersist(NodeId node, const std::vector<consensus::Entry>& entries,
                 const std::optional<consensus::HardState>&, const SimLogStorage& log) override {
    checker.OnPersist(node, entries, log);
  }
  void OnApplied(NodeId node, const consensus::Entry& entry,
                 const std::vector<AppliedCommand>& commands, const KvStateMachine& sm) override {
    checker.OnApplied(node, entry, commands, sm);
    if (!commands.empty()) batches[node].push_back(commands.size());
  }
  void OnSnapshotInstalled(NodeId node, const consensus::SnapshotMeta& meta,
                           const KvStateMachine& sm) override {
    checker.OnSnapshotInstalled(node, meta, sm);
  }
  SafetyChecker checker;
  std::map<NodeId, std::vector<size_t>> batches;  // Commands per applied entry.
};

// A few drivers on a SimNetwork, stepped by hand, plus one raw client.
class Harness {
 public:
  explicit Harness(int nodes, DriverBugs bugs = {}, uint64_t compact_every_entries = 0)
      : network_(1, NetOptions()) {
    std::vector<NodeId> members;
    for (int i = 1; i <= nodes; ++i) members.push_back(static_cast<NodeId>(i));
    for (NodeId id : members) {
      Node& n = nodes_[id];
      SimLogOptions lo;
      lo.node = id;
      lo.ring_bytes = 256u << 10;
      n.log = std::move(*SimLogStorage::CreateEmpty(lo, &n.snapshots));
      n.sm = std::make_unique<KvStateMachine>();
      std::vector<NodeId> peers;
      for (NodeId p : members) {
        if (p != id) peers.push_back(p);
      }
      peers.push_back(kClient);
      n.endpoint = std::move(*network_.CreateEndpoint(id, peers));
      DriverOptions d;
      d.id = id;
      d.members = members;
      d.raft.random_seed = id * 7 + 1;
      d.bugs = bugs;
      d.compact_every_entries = compact_every_entries;
      d.raft.snapshot_chunk_bytes = 64;  // Several chunks per snapshot.
      auto driver =
          NodeDriver::Start(d, n.log.get(), n.sm.get(), &n.snapshots, n.endpoint.get(), &observer);
      EXPECT_TRUE(driver.ok()) << driver.status();
      n.driver = std::move(*driver);
    }
    client_ = std::move(*network_.CreateEndpoint(kClient, members));
  }
  ~Harness() {
    for (auto& [id, n] : nodes_) {
      n.driver.reset();
      n.endpoint.reset();
    }
    client_.reset();
  }

  static transport::SimOptions NetOptions() {
    transport::SimOptions o;
    o.delay_us_min = o.delay_us_max = 100;
    return o;
  }

  // Advances 1 ms: every node ticks once, then runs until the network is
  // quiet for this millisecond (deliveries every 100 us).
  void RunMs(int ms = 1) {
    for (int i = 0; i < ms; ++i) {
      for (int sub = 0; sub < 10; ++sub) {
        network_.Advance(kTickUs / 10);
        for (auto& [id, n] : nodes_) {
          if (n.driver == nullptr || paused_.contains(id)) continue;
          absl::Status s = n.driver->Iterate(sub == 0 ? 1 : 0);
          if (absl::IsAborted(s)) {
            crashed_[id] = n.driver->TakeCrashImage();
            n.driver.reset();
            n.endpoint.reset();
          } else {
            EXPECT_TRUE(s.ok()) << s;
          }
        }
        (void)client_->Poll([this](transport::NodeId from, absl::Span<const uint8_t> bytes) {
          auto r = DecodeReply(bytes);
          ASSERT_TRUE(r.ok());
          replies.push_back({from, *r});
        });
      }
    }
  }
  NodeId WaitForLeader() {
    for (int ms = 0; ms < 500; ++ms) {
      for (auto& [id, n] : nodes_) {
        if (n.driver && n.driver->raft().role() == consensus::Role::kLeader &&
            n.driver->raft().commit_index() == n.driver->raft().last_index()) {
          return id;
        }
      }
      RunMs();
    }
    ADD_FAILURE() << "no leader";
    return 0;
  }
  void Send(NodeId to, const Command& c) {
    const std::string bytes = EncodeRequest(c);
    ASSERT_TRUE(client_->Send(to, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()),
                                                      bytes.size()))
                    .ok());
  }
  NodeDriver& driver(NodeId id) { return *nodes_.at(id).driver; }
  const SimLogStorage& log(NodeId id) { return *nodes_.at(id).log; }
  KvStateMachine& sm(NodeId id) { return *nodes_.at(id).sm; }
  transport::SimNetwork& network() { return network_; }
  void Pause(NodeId id) { paused_.insert(id); }
  bool Crashed(NodeId id) const { return crashed_.contains(id); }
  const std::vector<uint8_t>& CrashImage(NodeId id) const { return crashed_.at(id); }

  struct Received {
    NodeId from;
    Reply reply;
  };
  std::vector<Received> replies;
  TestObserver observer;

 private:
  struct Node {
    SnapshotStore snapshots;
    std::unique_ptr<SimLogStorage> log;
    std::unique_ptr<KvStateMachine> sm;
    std::unique_ptr<transport::Transport> endpoint;
    std::unique_ptr<NodeDriver> driver;
  };
  transport::SimNetwork network_;
  std::map<NodeId, Node> nodes_;
  std::unique_ptr<transport::Transport> client_;
  std::set<NodeId> paused_;
  std::map<NodeId, std::vector<uint8_t>> crashed_;
};

Command Put(uint64_t seq, std::string key, std::string value) {
  return Command{kClient, seq, OpKind::kPut, std::move(key), std::move(value), std::nullopt};
}
Command Append(uint64_t seq, std::string key, std::string value) {
  return Command{kClient, seq, OpKind::kAppend, std::move(key), std::move(value), std::nullopt};
}
Command Get(uint64_t seq, std::string key) {
  return Command{kClient, seq, OpKind::kGet, std::move(key), "", std::nullopt};
}

TEST(NodeDriverTest, WritesOfOneIterationShareOneEntry) {
  Harness h(1);
  const NodeId leader = h.WaitForLeader();
  ASSERT_EQ(leader, 1u);
  const uint64_t proposals = h.driver(1).stats().proposals;
  // Three requests arrive in the same instant: one proposal, one entry.
  h.Send(1, Put(1, "a", "1"));
  h.Send(1, Append(2, "a", "2"));
  h.Send(1, Put(3, "b", "3"));
  h.RunMs(2);
  EXPECT_EQ(h.driver(1).stats().proposals, proposals + 1);
  EXPECT_EQ(h.observer.batches[1], std::vector<size_t>{3});
  ASSERT_EQ(h.replies.size(), 3u);
  for (const auto& r : h.replies) EXPECT_EQ(r.reply.status, ReplyStatus::kOk);
  EXPECT_EQ(h.sm(1).Read("a").value, "12");
  EXPECT_FALSE(h.observer.checker.failed()) << h.observer.checker.first().detail;
}

TEST(NodeDriverTest, ARetryIsAnsweredFromTheSessionTable) {
  Harness h(1);
  h.WaitForLeader();
  h.Send(1, Append(1, "k", "x"));
  h.RunMs(2);
  ASSERT_EQ(h.replies.size(), 1u);
  const uint64_t executed = h.driver(1).stats().commands_executed;
  const uint64_t proposals = h.driver(1).stats().proposals;
  h.Send(1, Append(1, "k", "x"));  // The client never saw the first answer.
  h.RunMs(2);
  ASSERT_EQ(h.replies.size(), 2u);
  EXPECT_EQ(h.replies[1].reply.status, ReplyStatus::kOk);
  EXPECT_EQ(h.driver(1).stats().commands_executed, executed);
  EXPECT_EQ(h.driver(1).stats().proposals, proposals);  // Not even proposed.
  EXPECT_EQ(h.driver(1).stats().commands_deduplicated, 1u);
  EXPECT_EQ(h.sm(1).Read("k").value, "x");
  // An older request than the session's last is stale.
  h.Send(1, Append(2, "k", "y"));
  h.RunMs(2);
  h.Send(1, Append(1, "k", "x"));
  h.RunMs(2);
  ASSERT_EQ(h.replies.size(), 4u);
  EXPECT_EQ(h.replies[3].reply.status, ReplyStatus::kStale);
  EXPECT_EQ(h.sm(1).Read("k").value, "xy");
}

TEST(NodeDriverTest, ReadsGoThroughReadIndexAndFollowersRedirect) {
  Harness h(3);
  const NodeId leader = h.WaitForLeader();
  h.Send(leader, Put(1, "k", "v"));
  h.RunMs(5);
  h.Send(leader, Get(2, "k"));
  h.RunMs(5);
  ASSERT_EQ(h.replies.size(), 2u);
  EXPECT_EQ(h.replies[1].reply.status, ReplyStatus::kOk);
  EXPECT_EQ(h.replies[1].reply.result, (CommandResult{true, "v"}));
  EXPECT_EQ(h.driver(leader).stats().reads_served, 1u);

  const NodeId follower = leader == 1 ? 2 : 1;
  h.Send(follower, Get(3, "k"));
  h.RunMs(2);
  ASSERT_EQ(h.replies.size(), 3u);
  EXPECT_EQ(h.replies[2].reply.status, ReplyStatus::kNotLeader);
  EXPECT_EQ(h.replies[2].reply.leader_hint, leader);
  EXPECT_FALSE(h.observer.checker.failed()) << h.observer.checker.first().detail;
}

TEST(NodeDriverTest, LosingLeadershipFailsPendingRequestsAsUnknown) {
  Harness h(3);
  const NodeId leader = h.WaitForLeader();
  // Cut the leader from its followers (not from the client): its write
  // cannot commit, and check-quorum makes it step down.
  for (NodeId other : {1, 2, 3}) {
    if (other == leader) continue;
    h.network().Cut(leader, other);
    h.network().Cut(other, leader);
  }
  h.Send(leader, Put(1, "k", "v"));
  h.Send(leader, Get(2, "k"));
  h.RunMs(60);
  ASSERT_EQ(h.replies.size(), 2u);
  for (const auto& r : h.replies) {
    EXPECT_EQ(r.reply.status, ReplyStatus::kUnknown) << ReplyStatusName(r.reply.status);
  }
  EXPECT_NE(h.driver(leader).raft().role(), consensus::Role::kLeader);
  EXPECT_EQ(h.driver(leader).pending_requests(), 0u);
  EXPECT_GE(h.driver(leader).stats().leadership_losses, 1u);
}

TEST(NodeDriverTest, PersistBeforeSendHoldsAndThePlantedBugBreaksIt) {
  {
    Harness h(3);
    h.WaitForLeader();
    h.RunMs(20);
    EXPECT_FALSE(h.observer.checker.failed()) << h.observer.checker.first().detail;
  }
  {
    Harness h(3, DriverBugs{.send_before_persist = true});
    h.RunMs(100);
    ASSERT_TRUE(h.observer.checker.failed());
    EXPECT_EQ(h.observer.checker.first().check, "persist-before-send");
  }
}

TEST(NodeDriverTest, ACrashPointStopsTheNodeAtOnce) {
  Harness h(3);
  const NodeId leader = h.WaitForLeader();
  const NodeId follower = leader == 1 ? 2 : 1;
  h.Send(leader, Put(1, "k", "v"));
  // The follower dies at its first event: receiving the append, it stores
  // the entry into its log region, and nothing after that happens.
  h.driver(follower).ArmCrash(1, pmemlog::CrashMode::kTorn);
  h.RunMs(10);
  ASSERT_TRUE(h.Crashed(follower));
  SimLogOptions lo;
  lo.node = follower;
  lo.ring_bytes = 256u << 10;
  auto recovered = SimLogStorage::Recover(lo, h.CrashImage(follower));
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  h.observer.checker.OnRecovered(follower, **recovered);
  // The two others still commit the write.
  ASSERT_EQ(h.replies.size(), 1u);
  EXPECT_EQ(h.replies[0].reply.status, ReplyStatus::kOk);
  EXPECT_FALSE(h.observer.checker.failed()) << h.observer.checker.first().detail;
}

TEST(NodeDriverTest, ALaggingFollowerCatchesUpThroughASnapshot) {
  Harness h(3, {}, /*compact_every_entries=*/5);
  const NodeId leader = h.WaitForLeader();
  const NodeId lagging = leader == 3 ? 2 : 3;
  for (NodeId other : {1, 2, 3}) {
    if (other == lagging) continue;
    h.network().Cut(lagging, other);
    h.network().Cut(other, lagging);
  }
  for (uint64_t seq = 1; seq <= 30; ++seq) {
    h.Send(leader, Append(seq, "k", absl::StrCat(seq, ";")));
    h.RunMs(3);
  }
  ASSERT_EQ(h.replies.size(), 30u);
  EXPECT_GT(h.log(leader).FirstIndex(), 20u);  // Compacted.
  EXPECT_GE(h.driver(leader).stats().compactions, 5u);
  h.network().HealAll();
  h.RunMs(100);
  EXPECT_GE(h.driver(lagging).stats().snapshots_installed, 1u);
  EXPECT_EQ(h.sm(lagging).applied_index(), h.sm(leader).applied_index());
  EXPECT_EQ(h.sm(lagging).DataHash(), h.sm(leader).DataHash());
  EXPECT_EQ(h.sm(lagging).Read("k"), h.sm(leader).Read("k"));
  EXPECT_FALSE(h.observer.checker.failed()) << h.observer.checker.first().detail;
}

// A crash after the snapshot became the state machine but before the log
// was reset to it: Start finishes the install.
TEST(NodeDriverTest, StartFinishesAnInterruptedSnapshotInstall) {
  transport::SimNetwork network(1);
  auto endpoint = network.CreateEndpoint(1, std::vector<NodeId>{});
  ASSERT_TRUE(endpoint.ok());
  SnapshotStore store;
  SimLogOptions lo;
  lo.node = 1;
  auto log = SimLogStorage::CreateEmpty(lo, &store);
  ASSERT_TRUE(log.ok());
  std::vector<consensus::Entry> entries;
  for (uint64_t i = 1; i <= 3; ++i) entries.push_back({1, i, consensus::EntryType::kNoop, ""});
  ASSERT_TRUE((*log)->Persist(entries, consensus::HardState{2, 0, 3}).ok());
  KvStateMachine sm;
  for (uint64_t i = 1; i <= 10; ++i) {
    ASSERT_TRUE(sm.Apply({i <= 3 ? 1u : 2u, i, consensus::EntryType::kNoop, ""}).ok());
  }
  store.data = sm.Serialize();
  store.meta = consensus::SnapshotMeta{10, 2, consensus::Membership{{1}, {}}, store.data.size()};
  TestObserver observer;
  DriverOptions d;
  d.id = 1;
  d.members = {1};
  auto driver = NodeDriver::Start(d, log->get(), &sm, &store, endpoint->get(), &observer);
  ASSERT_TRUE(driver.ok()) << driver.status();
  EXPECT_EQ((*log)->FirstIndex(), 11u);
  EXPECT_EQ((*log)->LastIndex(), 10u);
  EXPECT_EQ((*driver)->raft().commit_index(), 10u);
  driver->reset();
  endpoint->reset();
}

TEST(NodeDriverTest, StartRefusesAStateMachineAheadOfTheLog) {
  transport::SimNetwork network(1);
  auto endpoint = network.CreateEndpoint(1, std::vector<NodeId>{});
  ASSERT_TRUE(endpoint.ok());
  SimLogOptions lo;
  lo.node = 1;
  auto log = SimLogStorage::CreateEmpty(lo);
  ASSERT_TRUE(log.ok());
  KvStateMachine sm;
  ASSERT_TRUE(sm.Apply(consensus::Entry{1, 1, consensus::EntryType::kNoop, ""}).ok());
  TestObserver observer;
  DriverOptions d;
  d.id = 1;
  d.members = {1};
  EXPECT_FALSE(NodeDriver::Start(d, log->get(), &sm, nullptr, endpoint->get(), &observer).ok());
  endpoint->reset();
}

}  // namespace
}  // namespace blizzard::sim
