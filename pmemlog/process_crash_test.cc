// Crash test (b): real processes on a real pool. A forked child opens the log
// and appends batches in a loop (compacting when full, committing now and
// then), writing each durable last index and commit to a pipe after the call
// that made it durable returned. The parent SIGKILLs the child at a random
// moment, reopens the pool, and checks that recovery succeeds, that every
// reported entry that was not compacted is there with the right content,
// that no entry is damaged, and that the hard state is at least the last
// reported one. 200 iterations; entry i's content is a function of i alone.
//
// (SIGKILL loses no stores on tmpfs, so this tests the process-crash path:
// recovery of whatever state the code left at any instruction. Power loss,
// i.e. unflushed stores, is log_crash_test's job.)
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "pmemlog/log_core.h"
#include "pmemlog/log_format.h"
#include "pmemlog/log_pool.h"
#include "pmemlog/pmem_log.h"
#include "pmemlog/pmem_persistence.h"
#include "pmemlog/test_util.h"

namespace blizzard::pmemlog {
namespace {

using ::blizzard::pmemlog::testing::MakeEntry;
using ::blizzard::pmemlog::testing::ShmDir;

constexpr int kIterations = 200;
// libpmemobj's open costs tens of ms here; the parent pays it every this many
// iterations and otherwise recovers with the log core over a plain mapping.
constexpr int kFullOpenEvery = 10;
constexpr uint64_t kSeed = 20240601;

enum ReportKind : uint64_t { kAppended = 1, kCommitted = 2 };
struct Report {
  uint64_t kind;
  uint64_t value;
};

LogEntry EntryFor(uint64_t index) { return MakeEntry(index, 1, (index * 7919) % 2000); }

LogOptions Options(const std::string& path) {
  LogOptions o;
  o.path = path;
  o.pool_bytes = format::kPoolBytesMin;  // A ~4 MiB ring: it wraps often.
  o.cluster_id = 5;
  o.node_id = 1;
  return o;
}

[[noreturn]] void ChildMain(const LogOptions& options, int fd, uint64_t seed) {
  absl::StatusOr<std::unique_ptr<PmemLog>> opened = PmemLog::Open(options);
  if (!opened.ok()) _exit(2);
  PmemLog& log = **opened;
  std::mt19937_64 rng(seed);
  uint64_t commit = log.GetHardState().commit;
  auto report = [fd](ReportKind kind, uint64_t value) {
    const Report r{kind, value};
    // Pipe writes below PIPE_BUF are atomic: the parent sees whole reports.
    if (write(fd, &r, sizeof(r)) != static_cast<ssize_t>(sizeof(r))) _exit(4);
  };
  for (;;) {
    const uint64_t next = log.LastIndex() + 1;
    std::vector<LogEntry> batch;
    const uint64_t n = 1 + rng() % 8;
    for (uint64_t i = 0; i < n; ++i) batch.push_back(EntryFor(next + i));
    const absl::Status s = log.Append(batch);
    if (s.code() == absl::StatusCode::kResourceExhausted) {
      if (!log.CompactPrefix(log.LastIndex() - 10).ok()) _exit(5);
      continue;
    }
    if (!s.ok()) _exit(3);
    report(kAppended, log.LastIndex());
    if (rng() % 4 == 0) {
      commit = log.LastIndex();
      if (!log.SetHardState({1, 1, commit}).ok()) _exit(6);
      report(kCommitted, commit);
    }
  }
}

// Recovers the log in the pool file with the log core over a plain shared
// mapping (the same recovery PmemLog::Open runs, minus libpmemobj's open),
// and checks it. Returns the number of entries read.
template <typename Log>
uint64_t Verify(const Log& log, uint64_t max_appended, uint64_t max_committed) {
  EXPECT_GE(log.LastIndex(), max_appended);
  EXPECT_GE(log.GetHardState().commit, max_committed);
  uint64_t checked = 0;
  for (uint64_t i = log.FirstIndex(); i <= log.LastIndex(); ++i, ++checked) {
    absl::StatusOr<LogEntry> e = log.Read(i);
    if (!e.ok() || !(*e == EntryFor(i))) {
      ADD_FAILURE() << "entry " << i << ": " << (e.ok() ? "wrong content" : e.status().ToString());
      break;
    }
  }
  return checked;
}

uint64_t MetaOffsetOf(const std::string& path) {
  absl::StatusOr<std::unique_ptr<LogPool>> pool = LogPool::Open(path);
  ABSL_RAW_CHECK(pool.ok(), "cannot open the pool");
  return (*pool)->meta_offset();
}

TEST(ProcessCrashTest, KilledWritersLoseNothingTheyReported) {
  ShmDir dir("process_crash");
  const LogOptions options = Options(dir.File("log"));
  ASSERT_TRUE(PmemLog::Open(options).ok());  // Create once.
  const uint64_t meta_offset = MetaOffsetOf(options.path);
  std::mt19937_64 rng(kSeed);
  uint64_t max_appended = 0;
  uint64_t max_committed = 0;
  uint64_t checked_entries = 0;
  for (int iter = 0; iter < kIterations; ++iter) {
    SCOPED_TRACE(::testing::Message() << "seed=" << kSeed << " iteration=" << iter);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const uint64_t child_seed = rng();
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      ChildMain(options, fds[1], child_seed);
    }
    close(fds[1]);
    // Mostly mid-run: after the child's first durable append, which follows
    // libpmemobj's open (tens of ms here). Sometimes at a blind moment,
    // usually during the child's open and recovery.
    if (rng() % 8 != 0) {
      pollfd p{fds[0], POLLIN, 0};
      ASSERT_EQ(poll(&p, 1, 10000), 1) << "the child never reported";
      usleep(rng() % 15000);
    } else {
      usleep(rng() % 30000);
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    // A child that failed its own PmemLog::Open (or an append) exits early.
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited early with " << WEXITSTATUS(wstatus);
    Report r;
    ssize_t got;
    while ((got = read(fds[0], &r, sizeof(r))) == static_cast<ssize_t>(sizeof(r))) {
      if (r.kind == kAppended) max_appended = std::max(max_appended, r.value);
      if (r.kind == kCommitted) max_committed = std::max(max_committed, r.value);
    }
    ASSERT_EQ(got, 0) << "torn report";
    close(fds[0]);

    if (iter % kFullOpenEvery == 0) {
      absl::StatusOr<std::unique_ptr<PmemLog>> log = PmemLog::Open(options);
      ASSERT_TRUE(log.ok()) << log.status();
      checked_entries += Verify(**log, max_appended, max_committed);
    } else {
      const int fd = open(options.path.c_str(), O_RDWR);
      ASSERT_GE(fd, 0);
      struct stat st;
      ASSERT_EQ(fstat(fd, &st), 0);
      void* map = mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      close(fd);
      ASSERT_NE(map, MAP_FAILED);
      PmemPersistence region(static_cast<uint8_t*>(map), st.st_size);
      absl::StatusOr<std::unique_ptr<LogCore>> log =
          LogCore::Open(&region, meta_offset, Identity{options.cluster_id, options.node_id});
      EXPECT_TRUE(log.ok()) << log.status();
      if (log.ok()) checked_entries += Verify(**log, max_appended, max_committed);
      log = absl::UnknownError("closed");
      munmap(map, st.st_size);
    }
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(max_appended, 20000u);  // Far past the ring's ~4k entries: it wrapped.
  std::printf("%d kills, last reported index %lu, commit %lu, %lu entry reads verified\n",
              kIterations, static_cast<unsigned long>(max_appended),
              static_cast<unsigned long>(max_committed),
              static_cast<unsigned long>(checked_entries));
}

}  // namespace
}  // namespace blizzard::pmemlog
