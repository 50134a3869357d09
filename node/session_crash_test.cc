// Crash atomicity of client sessions with real processes: a child applies
// session-tagged batches (each of clients 1..3 increments its counter with
// seq = the entry index, plus a stale retry that must change nothing) and
// reports each applied index over a pipe; the parent SIGKILLs it at a
// random moment, reopens the pool and checks that the ops, the session
// records and the applied index moved together: for every client, counter
// == recorded seq == recorded result == AppliedIndex(), and no reported
// index was lost. (structures/kv_store_crash_test.cc proves the store's
// transactions atomic in general; this pins the session table to them.)
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "node/session_table.h"
#include "structures/kv_store.h"

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

}  // namespace
}  // namespace blizzard::node
