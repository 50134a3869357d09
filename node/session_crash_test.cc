// Crash atomicity of client sessions with real processes: a child applies
// session-tagged batches (each of clients 1..3 increments its counter with
// seq = the entry index, plus a stale retry that must change nothing) and
// reports each applied index over a pipe; the parent SIGKILLs it at a
// random moment, reopens the pool and checks that the ops, the session
// records and the applied index moved together: for every client, counter
// == recorded seq == recorded result == AppliedIndex(), and no reported
// index was lost. (structures/kv_store_crash_test.cc proves the store's
// transactions atomic in general; this pins the session table to them.)
//
// Physical mode adds no new persistent write path: the leader's
// ExecuteOnTop transaction is always aborted, and every replica applies
// committed entries with the existing write-set apply
// (KvStore::ApplyEntryWriteSet), whose write sets now carry the session
// records. PhysicalSessionCrashTest crashes both at every store of a
// simulated arena with session traffic, and checks that a restart from
// any crash point loads the same session table the live replica holds.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "node/physical_entry.h"
#include "node/replication.h"
#include "node/session_table.h"
#include "structures/arena_testing.h"
#include "structures/kv_store.h"
#include "structures/sim_memory.h"

namespace blizzard::node {
namespace {

using structures::Op;
using structures::OpCode;

constexpr uint64_t kSeed = 0x5e55;
constexpr int kRounds = 20;
constexpr auto kBudget = std::chrono::seconds(30);
constexpr uint64_t kClients = 3;

structures::StoreOptions Options(const std::string& path) {
  structures::StoreOptions o;
  o.path = path;
  o.pool_bytes = 16u << 20;
  o.cluster_id = 1;
  o.node_id = 1;
  o.verify_on_open = false;
  return o;
}

std::vector<Op> BatchFor(uint64_t index) {
  std::vector<Op> batch;
  for (uint64_t c = 1; c <= kClients; ++c) {
    SessionTable::AppendTagged(batch, c, index, Op{OpCode::kIncrBy, {absl::StrCat("ctr", c)}, 1});
  }
  // A stale retry of an earlier request: answered, never applied.
  if (index > 1) SessionTable::AppendTagged(batch, 1, index - 1, Op{OpCode::kIncrBy, {"ctr1"}, 1});
  return batch;
}

[[noreturn]] void ChildMain(const std::string& path, int fd) {
  auto store = structures::KvStore::Open(Options(path));
  if (!store.ok()) _exit(2);
  SessionTable table(kClients);
  if (!table.Load(**store).ok()) _exit(2);
  for (uint64_t i = (*store)->AppliedIndex() + 1;; ++i) {
    auto plan = table.PlanBatch(BatchFor(i));
    if (!plan.ok()) _exit(3);
    auto r = (*store)->ApplyBatch(i, plan->execute, [&](absl::Span<const structures::OpResult> res) {
      return table.RecordOps(*plan, res, i);
    });
    if (!r.ok()) _exit(3);
    table.Commit();
    if (write(fd, &i, sizeof(i)) != sizeof(i)) _exit(4);
  }
}

TEST(SessionCrashTest, KilledProcessKeepsOpsAndSessionsTogether) {
  SCOPED_TRACE(absl::StrCat("seed=", kSeed));
  const std::string dir = "/dev/shm/blizzard_session_crash_test_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/data.pool";
  ASSERT_TRUE(structures::KvStore::Open(Options(path)).ok());
  std::mt19937_64 rng(kSeed);
  uint64_t max_reported = 0;
  int rounds = 0;
  const auto start = std::chrono::steady_clock::now();
  for (; rounds < kRounds && std::chrono::steady_clock::now() - start < kBudget; ++rounds) {
    SCOPED_TRACE(absl::StrCat("round ", rounds));
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      ChildMain(path, fds[1]);
    }
    close(fds[1]);
    // Let the child open the pool and apply for a while, then kill it.
    std::string buffer;
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(50 + rng() % 250);
    while (std::chrono::steady_clock::now() < until) {
      pollfd p{fds[0], POLLIN, 0};
      if (poll(&p, 1, 10) > 0) {
        char chunk[4096];
        const ssize_t n = read(fds[0], chunk, sizeof(chunk));
        if (n > 0) buffer.append(chunk, static_cast<size_t>(n));
      }
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with " << WEXITSTATUS(status);
    char chunk[4096];
    ssize_t n;
    ASSERT_EQ(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    while ((n = read(fds[0], chunk, sizeof(chunk))) > 0) buffer.append(chunk, static_cast<size_t>(n));
    close(fds[0]);
    if (buffer.size() >= 8) {
      std::memcpy(&max_reported, buffer.data() + (buffer.size() / 8 - 1) * 8, 8);
    }

    auto store = structures::KvStore::Open(Options(path));
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Verify().ok());
    SessionTable table(kClients);
    ASSERT_TRUE(table.Load(**store).ok());
    const uint64_t applied = (*store)->AppliedIndex();
    ASSERT_GE(applied, max_reported) << "a reported batch was lost";
    for (uint64_t c = 1; c <= kClients && applied > 0; ++c) {
      SCOPED_TRACE(absl::StrCat("client ", c));
      ASSERT_EQ((*store)->Get(absl::StrCat("ctr", c)), std::to_string(applied));
      const SessionTable::Record* r = table.Find(c);
      ASSERT_NE(r, nullptr);
      EXPECT_EQ(r->seq, applied);
      EXPECT_EQ(r->last_index, applied);
      EXPECT_EQ(r->result.integer, static_cast<int64_t>(applied));
    }
  }
  EXPECT_GE(rounds, 5);
  EXPECT_GT(max_reported, 0u) << "no round applied anything";
  std::filesystem::remove_all(dir);
}

// --- Physical mode, simulated arena, crash at every store ---------------------

constexpr uint64_t kSimBytes = 512u << 10;

// The leader's log: every entry of term 1, built here (so cached: the
// durable payload is read only if the cache misses, which it must not).
class TermOneLog : public UnappliedLog {
 public:
  absl::StatusOr<uint64_t> TermAt(uint64_t index) const override {
    if (payloads.count(index) == 0) return absl::OutOfRangeError("no such entry");
    return 1;
  }
  absl::StatusOr<std::optional<std::string>> OpsPayload(uint64_t index) const override {
    return payloads.at(index);
  }
  std::map<uint64_t, std::string> payloads;
};

struct SimReplica {
  explicit SimReplica(std::vector<uint8_t> image = {}) : memory(kSimBytes) {
    if (!image.empty()) memory.Reset(image);
    auto s = structures::KvStore::OpenMemory(&memory);
    EXPECT_TRUE(s.ok()) << s.status();
    store = std::move(*s);
    EXPECT_TRUE(sessions.Load(*store).ok());
    mode = std::move(*CreateReplicationMode(store.get(), &sessions));
  }
  structures::SimMemory memory;
  std::unique_ptr<structures::KvStore> store;
  SessionTable sessions{kClients};
  std::unique_ptr<ReplicationMode> mode;
};

// Session entry `n` (1, 2, ...): every client increments its counter with
// seq n; a stale retry and an in-batch retry that must change nothing.
std::vector<Op> SessionBatch(uint64_t n) {
  std::vector<Op> batch = BatchFor(n);
  SessionTable::AppendTagged(batch, 2, n, Op{OpCode::kIncrBy, {"ctr2"}, 1});
  return batch;
}

// What a restart from `image` loads: the session table and counters of
// session entry `n`, at `index`, and the same table `live` holds.
void ExpectRestartAgrees(const std::vector<uint8_t>& image, const SessionTable& live, uint64_t n,
                         uint64_t index) {
  SimReplica restarted(image);
  ASSERT_EQ(restarted.store->AppliedIndex(), index);
  ASSERT_EQ(restarted.sessions.size(), live.size());
  for (uint64_t c = 1; c <= kClients && n > 0; ++c) {
    SCOPED_TRACE(absl::StrCat("client ", c));
    ASSERT_EQ(restarted.store->Get(absl::StrCat("ctr", c)), std::to_string(n));
    const SessionTable::Record* r = restarted.sessions.Find(c);
    const SessionTable::Record* l = live.Find(c);
    ASSERT_NE(r, nullptr);
    ASSERT_NE(l, nullptr);
    EXPECT_EQ(r->seq, n);
    EXPECT_EQ(r->last_index, index);
    EXPECT_EQ(r->result.integer, static_cast<int64_t>(n));
    EXPECT_EQ(r->seq, l->seq);
    EXPECT_EQ(r->last_index, l->last_index);
    EXPECT_EQ(r->result, l->result);
  }
}

TEST(PhysicalSessionCrashTest, CrashAtEveryStoreOfBuildAndApply) {
  SCOPED_TRACE(absl::StrCat("seed=", kSeed));
  std::mt19937_64 rng(kSeed);
  SimReplica leader, follower;
  TermOneLog log;
  uint64_t points = 0;
  uint64_t restarts = 0;
  uint64_t applied_n = 0;  // Session entries applied (entry i is entry n = i).
  for (uint64_t index = 1; index <= 40; ++index) {
    SCOPED_TRACE(absl::StrCat("index ", index));
    // The leader builds on its in-flight entries; a crash anywhere in it
    // recovers the committed state, byte for byte.
    const std::vector<uint8_t> before = leader.memory.bytes();
    absl::StatusOr<BuiltEntry> built = absl::UnknownError("not built");
    const auto images = structures::testing::CrashImages(
        leader.memory,
        [&] { built = leader.mode->BuildEntry(index, 1, SessionBatch(index), log); }, &points);
    ASSERT_TRUE(built.ok()) << built.status();
    ASSERT_TRUE(images.empty()) << "a crash while building left uncommitted bytes";
    ASSERT_EQ(leader.memory.bytes(), before);
    ASSERT_EQ(built->results->size(), kClients + (index > 1 ? 2 : 1));
    for (const structures::OpResult& r : *built->results) {
      if (r.kind == structures::OpResult::Kind::kError) {
        EXPECT_NE(r.text.find("stale"), std::string::npos) << r.text;
      } else {
        EXPECT_EQ(r.integer, static_cast<int64_t>(index));
      }
    }
    leader.mode->Proposed(index, 1);
    log.payloads[index] = built->payload;
    auto decoded = DecodePhysicalEntry(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(built->payload.data()),
                            built->payload.size()),
        kSimBytes);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(decoded->session_clients, (std::vector<uint64_t>{1, 2, 3}));
    if (rng() % 3 != 0 && index != 40) continue;
    // Commit everything in flight: each replica applies each entry,
    // crashing at every store; a crash leaves the bytes before or after,
    // and a restart from there loads the table the live replica had.
    for (uint64_t i = applied_n + 1; i <= index; ++i) {
      const std::string& p = log.payloads.at(i);
      const auto payload =
          absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(p.data()), p.size());
      for (SimReplica* r : {&leader, &follower}) {
        const std::vector<uint8_t> bytes_before = r->memory.bytes();
        const SessionTable table_before = r->sessions;
        // Every crash point's recovered image; a sample of them restarted.
        std::vector<std::vector<uint8_t>> images;
        uint64_t apply_points = 0;
        r->memory.set_crash_hook([&] {
          ++apply_points;
          images.push_back(r->memory.RecoveredImage());
        });
        absl::StatusOr<AppliedEntry> applied = r->mode->ApplyEntry(i, payload);
        r->memory.set_crash_hook(nullptr);
        points += apply_points;
        ASSERT_TRUE(applied.ok()) << applied.status();
        EXPECT_EQ(applied->ops, kClients + (i > 1 ? 2 : 1));
        ASSERT_GT(images.size(), 10u);
        for (size_t k = 0; k < images.size(); ++k) {
          const bool is_before = images[k] == bytes_before;
          ASSERT_TRUE(is_before || images[k] == r->memory.bytes())
              << "crash point " << k << ": a crash image is neither state";
          if (k % 16 == 0 || k + 1 == images.size()) {
            SCOPED_TRACE(absl::StrCat("restart at crash point ", k));
            if (is_before) {
              ExpectRestartAgrees(images[k], table_before, i - 1, i - 1);
            } else {
              ExpectRestartAgrees(images[k], r->sessions, i, i);
            }
            ++restarts;
          }
        }
      }
      ASSERT_EQ(leader.memory.bytes(), follower.memory.bytes());
      ASSERT_EQ(leader.store->StateHash(), follower.store->StateHash());
    }
    applied_n = index;
  }
  ExpectRestartAgrees(follower.memory.bytes(), follower.sessions, 40, 40);
  EXPECT_GT(points, 5000u);
  EXPECT_GT(restarts, 40u);
  ASSERT_TRUE(follower.store->Verify().ok());
  std::printf("physical session crash test: %lu crash points, %lu restarts\n",
              static_cast<unsigned long>(points), static_cast<unsigned long>(restarts));
}

}  // namespace
}  // namespace blizzard::node
