// Physical replication against simulated arenas: a leader and followers
// driven through the ReplicationMode interface the server uses, with a
// scripted Raft log (entries, terms, durability) in place of Raft.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/physical_entry.h"
#include "node/replication.h"
#include "node/session_table.h"
#include "structures/kv_store.h"
#include "structures/sim_memory.h"
#include "structures/test_util.h"

namespace blizzard::node {
namespace {

using structures::KvStore;
using structures::Op;
using structures::OpResult;
using structures::SimMemory;
using ::testing::HasSubstr;

constexpr uint64_t kArenaBytes = 4u << 20;

struct LogEntry {
  uint64_t term = 0;
  std::optional<std::string> payload;  // nullopt: no-op / config entry.
  bool durable = true;
};

// One node's Raft log, as the scripted test keeps it.
class ScriptedLog : public UnappliedLog {
 public:
  absl::StatusOr<uint64_t> TermAt(uint64_t index) const override {
    auto it = entries.find(index);
    if (it == entries.end()) return absl::OutOfRangeError(absl::StrCat("no entry ", index));
    return it->second.term;
  }
  absl::StatusOr<std::optional<std::string>> OpsPayload(uint64_t index) const override {
    auto it = entries.find(index);
    if (it == entries.end()) return absl::OutOfRangeError(absl::StrCat("no entry ", index));
    if (!it->second.durable) return absl::UnavailableError("not durable");
    return it->second.payload;
  }
  uint64_t last() const { return entries.empty() ? 0 : entries.rbegin()->first; }
  std::map<uint64_t, LogEntry> entries;
};

struct Replica {
  // sessions_max 0: no session table (as before sessions).
  explicit Replica(size_t sessions_max = 0) : memory(kArenaBytes), sessions_max(sessions_max) {
    Open();
  }
  // Opens the store over the memory's bytes, loads the session table from
  // it and creates the mode: what a node does at start-up (a restart, when
  // called again: the volatile state starts over).
  void Open() {
    mode.reset();
    sessions.reset();
    store.reset();
    auto s = KvStore::OpenMemory(&memory);
    ASSERT_TRUE(s.ok()) << s.status();
    store = std::move(*s);
    if (sessions_max > 0) {
      sessions = std::make_unique<SessionTable>(sessions_max);
      ASSERT_TRUE(sessions->Load(*store).ok());
    }
    auto m = CreateReplicationMode(store.get(), sessions.get());
    ASSERT_TRUE(m.ok()) << m.status();
    mode = std::move(*m);
  }
  SimMemory memory;
  size_t sessions_max;
  std::unique_ptr<KvStore> store;
  std::unique_ptr<SessionTable> sessions;
  std::unique_ptr<ReplicationMode> mode;
  ScriptedLog log;

  // Applies committed entries up to `commit` from this replica's log.
  void ApplyTo(uint64_t commit) {
    for (uint64_t i = store->AppliedIndex() + 1; i <= commit; ++i) {
      const LogEntry& e = log.entries.at(i);
      if (e.payload.has_value()) {
        auto r = mode->ApplyEntry(
            i, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(e.payload->data()),
                                   e.payload->size()));
        ASSERT_TRUE(r.ok()) << r.status();
        EXPECT_FALSE(r->results.has_value());
      } else {
        ASSERT_TRUE(mode->ApplyEmpty(i).ok());
      }
    }
  }
};

absl::Span<const uint8_t> Span(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// A three-node group under one leader, with a logical twin (a store that
// applies the same batches by re-execution) to compare against.
class PhysicalGroupTest : public ::testing::Test {
 protected:
  PhysicalGroupTest() {
    auto t = KvStore::OpenMemory(&twin_memory_);
    EXPECT_TRUE(t.ok());
    twin_ = std::move(*t);
  }

  // Leader `l` builds an entry for `ops` in `term`; appended to its log
  // (not durable yet) and, unless `lost`, to the followers' logs.
  uint64_t Propose(Replica& leader, uint64_t term, const std::vector<Op>& ops,
                   std::vector<OpResult>* results) {
    const uint64_t index = leader.log.last() + 1;
    auto built = leader.mode->BuildEntry(index, term, ops, leader.log);
    EXPECT_TRUE(built.ok()) << built.status();
    if (!built.ok()) return 0;
    EXPECT_TRUE(built->results.has_value());
    leader.mode->Proposed(index, term);
    leader.log.entries[index] = LogEntry{term, built->payload, false};
    if (results != nullptr) *results = *built->results;
    return index;
  }
  void Noop(Replica& leader, uint64_t term) {
    leader.log.entries[leader.log.last() + 1] = LogEntry{term, std::nullopt, false};
  }
  // Persisting and replicating: the leader's entries become durable and
  // the followers' logs become copies of it.
  void Replicate(Replica& leader, std::vector<Replica*> followers) {
    for (auto& [i, e] : leader.log.entries) e.durable = true;
    for (Replica* f : followers) f->log = leader.log;
  }
  // A commit index a random step beyond `commit` within what `follower`
  // holds (a durable, replicated prefix), or `commit` if it holds nothing
  // more.
  static uint64_t AdvanceCommit(std::mt19937_64& rng, const Replica& follower,
                                uint64_t commit) {
    uint64_t durable = commit;
    while (follower.log.entries.count(durable + 1) != 0) ++durable;
    return durable > commit ? commit + 1 + rng() % (durable - commit) : commit;
  }

  SimMemory twin_memory_{kArenaBytes};
  std::unique_ptr<KvStore> twin_;
};

// Seeded random batches with in-flight chains of up to 6 entries, no-ops
// between them, commits of random prefixes: the leader's results equal the
// logical twin's, and all replicas (leader included) end byte-identical,
// with the twin's state hash and content.
TEST_F(PhysicalGroupTest, ReplicasByteIdenticalAndMatchLogicalTwin) {
  const uint64_t seed = 0x7a11;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  std::mt19937_64 rng(seed);
  structures::testing::RandomOpOptions gen;
  gen.keys = 50;
  gen.big_value_bytes = 700;
  Replica a, b, c;
  const uint64_t term = 1;
  Noop(a, term);
  uint64_t commit = 0;
  for (int round = 0; round < 120; ++round) {
    const int n = static_cast<int>(rng() % 7);
    for (int k = 0; k < n; ++k) {
      if (rng() % 10 == 0) {
        Noop(a, term);
        continue;
      }
      const std::vector<Op> ops = structures::testing::RandomBatch(rng, gen);
      std::vector<OpResult> results;
      const uint64_t index = Propose(a, term, ops, &results);
      ASSERT_NE(index, 0u);
      // The twin applies no-ops before it as empty batches.
      for (uint64_t j = twin_->AppliedIndex() + 1; j < index; ++j) {
        ASSERT_TRUE(twin_->ApplyBatch(j, {}).ok());
      }
      auto twin_results = twin_->ApplyBatch(index, ops);
      ASSERT_TRUE(twin_results.ok());
      ASSERT_EQ(results, *twin_results) << "index " << index;
    }
    if (rng() % 2 == 0) Replicate(a, {&b, &c});
    commit = AdvanceCommit(rng, b, commit);
    a.ApplyTo(commit);
    b.ApplyTo(commit);
    if (rng() % 3 != 0) c.ApplyTo(commit);  // c lags sometimes.
  }
  Replicate(a, {&b, &c});
  commit = a.log.last();
  a.ApplyTo(commit);
  b.ApplyTo(commit);
  c.ApplyTo(commit);
  for (uint64_t j = twin_->AppliedIndex() + 1; j <= commit; ++j) {
    ASSERT_TRUE(twin_->ApplyBatch(j, {}).ok());
  }
  EXPECT_EQ(a.memory.bytes(), b.memory.bytes());
  EXPECT_EQ(a.memory.bytes(), c.memory.bytes());
  EXPECT_EQ(a.store->StateHash(), twin_->StateHash());
  EXPECT_EQ(structures::testing::Dump(*a.store), structures::testing::Dump(*twin_));
  ASSERT_TRUE(a.store->Verify().ok()) << a.store->Verify();
  std::string info;
  a.mode->AppendInfo(&info);
  EXPECT_THAT(info, HasSubstr("physical_reapplied_entries:"));
  EXPECT_THAT(info, HasSubstr("physical_cacheline_bytes_built:"));
}

// Cache-line rounding of a write set for the comparison counter: ranges
// sharing a line count it once.
TEST(PhysicalInfoTest, CacheLineBytesCountDistinctLines) {
  Replica a;
  // One SET: the value's block and the root, lines counted once each.
  const std::vector<Op> ops = {Op{structures::OpCode::kSet, {"k", std::string(100, 'v')}, 0, {}}};
  ScriptedLog log;
  auto built = a.mode->BuildEntry(1, 1, ops, log);
  ASSERT_TRUE(built.ok());
  auto entry = DecodePhysicalEntry(Span(built->payload), kArenaBytes);
  ASSERT_TRUE(entry.ok());
  std::set<uint64_t> lines;
  for (const auto& r : entry->write_set.ranges) {
    for (uint64_t o = r.offset; o < r.offset + r.post.size(); ++o) lines.insert(o / 64);
  }
  std::string info;
  a.mode->AppendInfo(&info);
  EXPECT_THAT(info, HasSubstr(absl::StrCat("physical_cacheline_bytes_built:", lines.size() * 64,
                                           "\r\n")));
  EXPECT_GT(lines.size() * 64, entry->write_set.bytes());
}

// A leader that built (and even replicated) entries that never commit
// loses leadership: its pool holds exactly the committed state, with
// nothing to undo. The new leader builds on the old leader's uncommitted
// entries it holds (from durable storage, another term), overwrites the
// rest, and everyone ends byte-identical.
TEST_F(PhysicalGroupTest, LeadershipLossLeavesCommittedStateAndNewLeaderBuildsOnLog) {
  const uint64_t seed = 0x1055;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  std::mt19937_64 rng(seed);
  structures::testing::RandomOpOptions gen;
  gen.keys = 30;
  Replica a, b, c;
  Noop(a, 1);
  for (int k = 0; k < 10; ++k) Propose(a, 1, structures::testing::RandomBatch(rng, gen), nullptr);
  Replicate(a, {&b, &c});
  a.ApplyTo(6);
  b.ApplyTo(6);
  c.ApplyTo(6);
  // More entries reach b only (7..11 replicated to b), then 12..15 stay on a.
  const std::vector<uint8_t> committed = a.memory.bytes();
  for (int k = 0; k < 9; ++k) Propose(a, 1, structures::testing::RandomBatch(rng, gen), nullptr);
  for (auto& [i, e] : a.log.entries) e.durable = true;
  b.log = a.log;
  for (uint64_t i = 17; i <= 20; ++i) b.log.entries.erase(i);
  for (int k = 0; k < 4; ++k) Propose(a, 1, structures::testing::RandomBatch(rng, gen), nullptr);
  // a is deposed: its pool never saw an uncommitted byte.
  EXPECT_EQ(a.memory.bytes(), committed);
  EXPECT_EQ(a.store->AppliedIndex(), 6u);

  // b leads term 2. Its log up to 16 holds term-1 entries (durable); its
  // own no-op at 17 is not durable yet and not cached: still built on.
  Noop(b, 2);
  std::vector<OpResult> results;
  const std::vector<Op> ops = structures::testing::RandomBatch(rng, gen);
  const uint64_t index = Propose(b, 2, ops, &results);
  ASSERT_EQ(index, 18u);
  std::string info;
  b.mode->AppendInfo(&info);
  EXPECT_THAT(info, HasSubstr("physical_reapplied_entries:10\r\n"));
  Replicate(b, {&a, &c});  // a's 17..23 are overwritten.
  a.ApplyTo(index);
  b.ApplyTo(index);
  c.ApplyTo(index);
  EXPECT_EQ(a.memory.bytes(), b.memory.bytes());
  EXPECT_EQ(c.memory.bytes(), b.memory.bytes());

  ASSERT_TRUE(b.store->Verify().ok()) << b.store->Verify();
}

// An entry of an older term that is not durable yet cannot be built on:
// Unavailable, the caller retries. Nothing changes.
TEST_F(PhysicalGroupTest, OlderTermEntryNotDurableIsUnavailable) {
  Replica a;
  a.log.entries[1] = LogEntry{1, std::nullopt, false};
  const std::vector<uint8_t> before = a.memory.bytes();
  auto built = a.mode->BuildEntry(2, 2, {}, a.log);
  EXPECT_TRUE(absl::IsUnavailable(built.status())) << built.status();
  EXPECT_EQ(a.memory.bytes(), before);
}

// Malformed payloads (truncated, flipped bytes, another version, another
// arena size, a write set for another index) are refused with DataLoss
// naming the entry, and the store is unchanged: the node stops rather than
// diverging.
TEST_F(PhysicalGroupTest, MalformedPayloadsAreRefused) {
  const uint64_t seed = 0xbad;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  std::mt19937_64 rng(seed);
  structures::testing::RandomOpOptions gen;
  Replica a, b;
  std::vector<Op> ops;
  while (ops.empty()) ops = structures::testing::RandomBatch(rng, gen);
  const uint64_t index = Propose(a, 1, ops, nullptr);
  const std::string good = *a.log.entries.at(index).payload;
  const std::vector<uint8_t> before = b.memory.bytes();
  auto refused = [&](const std::string& payload, const char* what) {
    auto r = b.mode->ApplyEntry(index, Span(payload));
    EXPECT_FALSE(r.ok()) << what;
    EXPECT_TRUE(absl::IsDataLoss(r.status())) << what << ": " << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("entry 1")) << what;
    EXPECT_EQ(b.memory.bytes(), before) << what;
  };
  for (size_t n = 0; n < good.size(); ++n) refused(good.substr(0, n), "truncated");
  refused(good + "x", "trailing byte");
  std::string v = good;
  v[0] = 2;
  refused(v, "version 2");
  // Another arena size: a write set built for a larger arena.
  structures::WriteSet big;
  big.arena_bytes = kArenaBytes * 2;
  refused(EncodePhysicalEntry(1, big), "arena size");
  // A well-formed write set that leaves another applied index.
  Replica d;
  Propose(d, 1, ops, nullptr);
  const std::string second = *d.log.entries.at(1).payload;
  auto r = b.mode->ApplyEntry(index + 1, Span(second));
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_EQ(b.memory.bytes(), before);
  // Random byte flips: refused, or (if still well-formed) applied only
  // when it still sets the right index; never a crash.
  for (int k = 0; k < 300; ++k) {
    std::string f = good;
    f[rng() % f.size()] ^= static_cast<char>(1 + rng() % 255);
    auto res = b.mode->ApplyEntry(index, Span(f));
    if (res.ok()) {
      // Accepted: it changed bytes, but the pool is still a keyspace at
      // the entry's index. Reset the replica for the next flip.
      EXPECT_EQ(b.store->AppliedIndex(), index);
      b.memory.Reset(before);
      auto s = KvStore::OpenMemory(&b.memory);
      ASSERT_TRUE(s.ok());
      b.store = std::move(*s);
      b.mode = std::move(*CreateReplicationMode(b.store.get(), nullptr));
    } else {
      EXPECT_EQ(b.memory.bytes(), before);
    }
  }
  // The good one still applies.
  EXPECT_TRUE(b.mode->ApplyEntry(index, Span(good)).ok());
  EXPECT_EQ(a.store->AppliedIndex(), 0u);
  a.ApplyTo(index);
  EXPECT_EQ(a.memory.bytes(), b.memory.bytes());
}

// --- Client sessions ----------------------------------------------------------

constexpr size_t kSessionsMax = 3;

Op Incr(const std::string& key, int64_t by = 1) {
  return Op{structures::OpCode::kIncrBy, {key}, by, {}};
}

std::vector<Op> Tagged(uint64_t client, uint64_t seq, Op op) {
  std::vector<Op> batch;
  SessionTable::AppendTagged(batch, client, seq, std::move(op));
  return batch;
}

std::vector<Op> Concat(std::vector<std::vector<Op>> parts) {
  std::vector<Op> out;
  for (auto& p : parts) {
    for (Op& op : p) out.push_back(std::move(op));
  }
  return out;
}

// A logical-mode replica: applies an entry's ops as replication_logical.cc
// does (that library defines CreateReplicationMode too, so it cannot link
// into this test).
struct LogicalTwin {
  LogicalTwin() : memory(kArenaBytes), sessions(kSessionsMax) {
    auto s = KvStore::OpenMemory(&memory);
    EXPECT_TRUE(s.ok()) << s.status();
    store = std::move(*s);
  }
  std::vector<OpResult> Apply(uint64_t index, std::vector<Op> ops) {
    for (uint64_t j = store->AppliedIndex() + 1; j < index; ++j) {
      EXPECT_TRUE(store->ApplyBatch(j, {}).ok());
    }
    auto plan = sessions.PlanBatch(std::move(ops));
    EXPECT_TRUE(plan.ok()) << plan.status();
    bool recorded = true;
    auto r = store->ApplyBatch(index, plan->execute, sessions.EpilogueFor(*plan, index), nullptr,
                               &recorded);
    EXPECT_TRUE(r.ok()) << r.status();
    if (plan->has_sessions && recorded) sessions.Commit();
    return sessions.Results(*plan, *r);
  }
  SimMemory memory;
  std::unique_ptr<KvStore> store;
  SessionTable sessions;
};

// The session tables agree on every client in [1, clients_max].
void ExpectSameTable(const SessionTable& want, const SessionTable& got, uint64_t clients_max,
                     const std::string& what) {
  EXPECT_EQ(want.size(), got.size()) << what;
  for (uint64_t c = 1; c <= clients_max; ++c) {
    const SessionTable::Record* w = want.Find(c);
    const SessionTable::Record* g = got.Find(c);
    ASSERT_EQ(w == nullptr, g == nullptr) << what << ": client " << c;
    if (w == nullptr) continue;
    EXPECT_EQ(w->seq, g->seq) << what << ": client " << c;
    EXPECT_EQ(w->last_index, g->last_index) << what << ": client " << c;
    EXPECT_EQ(w->result, g->result) << what << ": client " << c;
  }
}

class PhysicalSessionTest : public PhysicalGroupTest {
 protected:
  // Builds on `leader` and feeds the same entry to the logical twin: the
  // replies must agree.
  std::vector<OpResult> Session(Replica& leader, uint64_t term, std::vector<Op> ops) {
    std::vector<OpResult> replies;
    const uint64_t index = Propose(leader, term, ops, &replies);
    EXPECT_NE(index, 0u);
    EXPECT_EQ(replies, twin.Apply(index, std::move(ops))) << "index " << index;
    return replies;
  }
  // Every replica applied everything: byte-identical pools (the twin's
  // bytes too), equal session tables, the twin's content and state hash.
  void ExpectConverged(std::vector<Replica*> replicas, uint64_t clients_max) {
    const uint64_t last = replicas[0]->log.last();
    for (Replica* r : replicas) r->ApplyTo(last);
    for (uint64_t j = twin.store->AppliedIndex() + 1; j <= last; ++j) {
      ASSERT_TRUE(twin.store->ApplyBatch(j, {}).ok());
    }
    for (size_t i = 0; i < replicas.size(); ++i) {
      SCOPED_TRACE(absl::StrCat("replica ", i));
      EXPECT_EQ(replicas[i]->store->AppliedIndex(), last);
      EXPECT_EQ(replicas[i]->memory.bytes(), replicas[0]->memory.bytes());
      EXPECT_EQ(replicas[i]->store->StateHash(), twin.store->StateHash());
      ExpectSameTable(twin.sessions, *replicas[i]->sessions, clients_max, "vs the twin");
      ASSERT_TRUE(replicas[i]->store->Verify().ok());
    }
    EXPECT_EQ(structures::testing::Dump(*replicas[0]->store),
              structures::testing::Dump(*twin.store));
    // The same log: the same bytes in either mode.
    EXPECT_TRUE(replicas[0]->memory.bytes() == twin.memory.bytes());
  }
  uint64_t SessionClientsOf(const Replica& r, uint64_t index) {
    auto e = DecodePhysicalEntry(Span(*r.log.entries.at(index).payload), kArenaBytes);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? e->session_clients.size() : 0;
  }

  LogicalTwin twin;
};

// A retry gets the original reply and is not executed again: pipelined
// right behind its original (built on the in-flight entry), in the same
// batch, and after the original was applied; an older seq is refused as in
// logical mode. Followers' tables follow the leader's.
TEST_F(PhysicalSessionTest, RetryGetsTheOriginalReply) {
  Replica a(kSessionsMax), b(kSessionsMax), c(kSessionsMax);
  Noop(a, 1);
  EXPECT_EQ(Session(a, 1, Tagged(7, 1, Incr("n")))[0].integer, 1);
  EXPECT_EQ(SessionClientsOf(a, 2), 1u);  // Version 2: names client 7.
  // Not committed yet: the retry is planned on top of entry 2.
  EXPECT_EQ(a.sessions->Find(7), nullptr);
  EXPECT_EQ(Session(a, 1, Tagged(7, 1, Incr("n")))[0].integer, 1);
  EXPECT_EQ(SessionClientsOf(a, 3), 0u);  // Changes no record: version 1.
  const std::vector<OpResult> twice =
      Session(a, 1, Concat({Tagged(7, 2, Incr("n", 10)), Tagged(7, 2, Incr("n", 10)),
                            {Incr("plain")}}));
  ASSERT_EQ(twice.size(), 3u);
  EXPECT_EQ(twice[0].integer, 11);
  EXPECT_EQ(twice[1], twice[0]);
  EXPECT_EQ(twice[2].integer, 1);
  const OpResult stale = Session(a, 1, Tagged(7, 1, Incr("n")))[0];
  EXPECT_EQ(stale.kind, OpResult::Kind::kError);
  EXPECT_EQ(stale.text, "ERR SESSION stale sequence number 1 (the session is at 2)");
  // Building restored the leader's table: it follows committed state only.
  EXPECT_EQ(a.sessions->Find(7), nullptr);
  Replicate(a, {&b, &c});
  a.ApplyTo(a.log.last());
  b.ApplyTo(a.log.last());
  ASSERT_NE(b.sessions->Find(7), nullptr);
  EXPECT_EQ(b.sessions->Find(7)->seq, 2u);
  EXPECT_EQ(b.sessions->Find(7)->result.integer, 11);
  ExpectSameTable(*a.sessions, *b.sessions, 10, "follower");
  // A retry after the original was applied.
  EXPECT_EQ(Session(a, 1, Tagged(7, 2, Incr("n", 10)))[0].integer, 11);
  Replicate(a, {&b, &c});
  ExpectConverged({&a, &b, &c}, 10);
  EXPECT_EQ(a.store->Get("n"), "11");
}

// The original commits under leader a, which is deposed before answering;
// the client retries at the new leader. Whether the new leader has applied
// the original (client 7) or holds it only in its log from the old term
// (client 8: read from durable storage, not from a cache), the retry gets
// the original reply and nothing runs twice. Then every node restarts
// (volatile state gone; tables loaded from the pools) and a third leader
// still answers the retries from the table.
TEST_F(PhysicalSessionTest, RetryAfterLeaderChangeAndRestartGetsTheOriginalReply) {
  Replica a(kSessionsMax), b(kSessionsMax), c(kSessionsMax);
  Noop(a, 1);
  EXPECT_EQ(Session(a, 1, Tagged(7, 1, Incr("n", 5)))[0].integer, 5);  // 2
  EXPECT_EQ(Session(a, 1, Tagged(8, 1, Incr("m", 3)))[0].integer, 3);  // 3
  Replicate(a, {&b, &c});
  a.ApplyTo(2);
  b.ApplyTo(2);
  c.ApplyTo(2);
  // a never learns that 3 committed; b leads term 2 with 3 unapplied.
  Noop(b, 2);  // 4, not durable.
  const std::vector<OpResult> retries =
      Session(b, 2, Concat({Tagged(7, 1, Incr("n", 5)), Tagged(8, 1, Incr("m", 3))}));
  ASSERT_EQ(retries.size(), 2u);
  EXPECT_EQ(retries[0].integer, 5);
  EXPECT_EQ(retries[1].integer, 3);
  EXPECT_EQ(Session(b, 2, Tagged(8, 2, Incr("m", 3)))[0].integer, 6);  // 6
  Replicate(b, {&a, &c});
  ExpectConverged({&a, &b, &c}, 10);
  EXPECT_EQ(b.store->Get("n"), "5");
  EXPECT_EQ(b.store->Get("m"), "6");

  for (Replica* r : {&a, &b, &c}) r->Open();
  ExpectSameTable(*b.sessions, *a.sessions, 10, "a after restart");
  ExpectSameTable(*b.sessions, *c.sessions, 10, "c after restart");
  ExpectSameTable(twin.sessions, *c.sessions, 10, "c vs twin after restart");
  Noop(c, 3);
  const std::vector<OpResult> after =
      Session(c, 3, Concat({Tagged(7, 1, Incr("n", 5)), Tagged(8, 2, Incr("m", 3))}));
  EXPECT_EQ(after[0].integer, 5);
  EXPECT_EQ(after[1].integer, 6);
  Replicate(c, {&a, &b});
  ExpectConverged({&c, &a, &b}, 10);
  EXPECT_EQ(c.store->Get("m"), "6");
}

// Seeded random session traffic (6 clients through a 3-entry table, so
// sessions are evicted; new requests, retries of the last seq, stale seqs,
// plain ops; in-flight chains of up to 6 entries, random commits, a
// follower that lags, restarts of a follower). Every reply equals the
// logical twin's; every follower's session table equals the leader's at
// the same applied index; at the end all pools are byte-identical, with
// the twin's content, state hash and session table.
TEST_F(PhysicalSessionTest, RandomSessionsMatchLogicalTwinAndFollowersAgree) {
  const uint64_t seed = 0x5e551;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  std::mt19937_64 rng(seed);
  structures::testing::RandomOpOptions gen;
  gen.keys = 20;
  gen.big_value_bytes = 300;
  constexpr uint64_t kClients = 6;
  Replica a(kSessionsMax), b(kSessionsMax), c(kSessionsMax);
  std::map<uint64_t, std::pair<uint64_t, Op>> last;  // client -> (seq, op)
  const uint64_t term = 1;
  Noop(a, term);
  uint64_t commit = 0;
  uint64_t retries = 0;
  for (int round = 0; round < 150; ++round) {
    const int n = static_cast<int>(rng() % 7);
    for (int k = 0; k < n; ++k) {
      if (rng() % 10 == 0) {
        Noop(a, term);
        continue;
      }
      std::vector<Op> batch;
      const int ops = 1 + static_cast<int>(rng() % 5);
      for (int j = 0; j < ops; ++j) {
        const uint64_t client = 1 + rng() % kClients;
        auto& [seq, op] = last[client];
        switch (rng() % 5) {
          case 0:
            batch.push_back(structures::testing::RandomOp(rng, gen));
            break;
          case 1:
            if (seq > 0) {
              SessionTable::AppendTagged(batch, client, seq, op);
              ++retries;
              break;
            }
            [[fallthrough]];
          case 2:
            if (seq > 1) {
              SessionTable::AppendTagged(batch, client, seq - 1, op);
              break;
            }
            [[fallthrough]];
          default:
            op = structures::testing::RandomOp(rng, gen);
            SessionTable::AppendTagged(batch, client, ++seq, op);
        }
      }
      Session(a, term, batch);
    }
    if (rng() % 2 == 0) Replicate(a, {&b, &c});
    commit = AdvanceCommit(rng, b, commit);
    a.ApplyTo(commit);
    b.ApplyTo(commit);
    ExpectSameTable(*a.sessions, *b.sessions, kClients, absl::StrCat("round ", round));
    ASSERT_EQ(a.store->StateHash(), b.store->StateHash()) << "round " << round;
    ASSERT_TRUE(a.memory.bytes() == b.memory.bytes()) << "round " << round;
    if (rng() % 3 != 0) {
      c.ApplyTo(commit);
      if (c.store->AppliedIndex() == a.store->AppliedIndex()) {
        ExpectSameTable(*a.sessions, *c.sessions, kClients, absl::StrCat("c, round ", round));
      }
    }
    if (rng() % 25 == 0) c.Open();  // A follower restarts.
  }
  Replicate(a, {&b, &c});
  ExpectConverged({&a, &b, &c}, kClients);
  EXPECT_GT(retries, 50u);
  EXPECT_EQ(a.sessions->size(), kSessionsMax);
}

}  // namespace
}  // namespace blizzard::node
