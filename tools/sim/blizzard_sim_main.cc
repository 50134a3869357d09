// blizzard_sim: runs the deterministic cluster simulator over one seed (with
// an optional readable trace) or a range of seeds (soak). See README.md.
//
//   blizzard_sim --seed=42 --trace          replay one seed, every event
//   blizzard_sim --seeds=1..100000 --jobs=2 soak
//
// Exit status: 0 if every seed passed, 1 if any failed, 2 on bad flags.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <iterator>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tools/sim/simulator.h"

ABSL_FLAG(int64_t, seed, -1, "Run this one seed.");
ABSL_FLAG(std::string, seeds, "", "Run the seeds A..B (inclusive), e.g. 1..1000.");
ABSL_FLAG(bool, trace, false, "Print every event of the run (only with --seed).");
ABSL_FLAG(int, jobs, 1, "Seeds run in parallel (threads).");
ABSL_FLAG(bool, swarm, true,
          "Draw cluster size, clients, keys, network faults and the fault profile from each "
          "seed; explicit flags below override the drawn values.");
ABSL_FLAG(int, nodes, 0, "Nodes, 1..7 (0: from the seed with --swarm, else 3).");
ABSL_FLAG(int, spare_nodes, -1,
          "Nodes outside the group at the start, for membership changes to add; nodes + spares "
          "<= 7 (-1: from the seed with --swarm, else 0).");
ABSL_FLAG(int, clients, 0, "Clients, 1..64 (0: from the seed with --swarm, else 4).");
ABSL_FLAG(int, keys, 0, "Keys (0: from the seed with --swarm, else 4).");
ABSL_FLAG(int64_t, steps, 20000, "Instants of the faulty phase.");
ABSL_FLAG(int, election_timeout_ticks, 10, "Raft's election timeout (ticks of 1 ms).");
ABSL_FLAG(double, drop, -1, "Message drop probability (-1: from the seed / default).");
ABSL_FLAG(double, duplicate, -1, "Message duplication probability (-1: from the seed / default).");
ABSL_FLAG(double, reorder, -1, "Message reordering probability (-1: from the seed / default).");
ABSL_FLAG(int64_t, delay_us_max, -1, "Largest message delay in us (-1: from the seed / default).");
ABSL_FLAG(int64_t, fault_interval_ms, -1,
          "Mean time between nemesis actions in ms; 0: no crashes, partitions or pauses "
          "(-1: from the seed / default).");
ABSL_FLAG(std::string, fault_weights, "",
          "Relative weights of the nemesis's actions, in the order crash, power-loss, partition, "
          "cut-link, isolate, pause, heal, transfer-leadership, membership-change, e.g. "
          "3,1,2,2,1,1,3,1,1 (empty: from the seed / default).");
ABSL_FLAG(int64_t, compact_every, -1,
          "Take a snapshot and compact the log every N applied entries; 0: never (-1: from the "
          "seed / default).");
ABSL_FLAG(int64_t, compact_keep, -1, "Entries kept below a snapshot (-1: from the seed / default).");
ABSL_FLAG(int, lease_reads, -1, "Raft leader lease reads: 1 on, 0 off (-1: from the seed / default).");
ABSL_FLAG(double, crash_point_probability, -1,
          "Probability that a crash hits a random event inside a loop iteration rather than "
          "falling between two (-1: from the seed / default).");
ABSL_FLAG(bool, no_faults, false, "No faults at all: no nemesis, no loss, duplication, reordering.");
ABSL_FLAG(std::string, bug, "none",
          "Plant a bug to see the simulator catch it: none, send_before_persist, "
          "volatile_sessions, no_dedup, stale_reads.");
ABSL_FLAG(bool, contract_check, true,
          "Check persist-before-send directly at every send (off: bugs must be caught through "
          "their consequences).");
ABSL_FLAG(bool, entries_before_term, false,
          "Persist a Ready's entries before its new term, as node/log_storage.cc does today "
          "(reproduces README.md's finding 1).");
ABSL_FLAG(bool, lease_with_server_clock, false,
          "With lease reads, keep node/server.cc's clock handling (ticks after messages, at most "
          "16 after a stall), which does not meet the lease's clock assumption.");
ABSL_FLAG(int64_t, log_ring_kib, -1, "Each node's pmemlog ring, KiB (-1: from the seed / default).");
ABSL_FLAG(bool, quiet, false,
          "Several seeds: print failures, a progress line every 10 s and the summary "
          "instead of one line per seed.");

namespace blizzard::sim {
namespace {

// The seed each worker is running, for a crash report: an assertion or a
// segfault inside one simulation must still name its seed.
constexpr int kJobsMax = 64;
std::atomic<uint64_t> g_running[kJobsMax];

void WriteAll(const char* text) {
  size_t n = 0;
  while (text[n] != '\0') ++n;
  (void)!write(STDERR_FILENO, text, n);
}

void OnFatalSignal(int signo) {
  WriteAll("\nblizzard_sim: fatal signal while running:");
  for (int j = 0; j < kJobsMax; ++j) {
    uint64_t seed = g_running[j].load();
    if (seed == 0) continue;
    char buf[32];
    int i = sizeof(buf);
    buf[--i] = '\0';
    do {
      buf[--i] = static_cast<char>('0' + seed % 10);
      seed /= 10;
    } while (seed != 0 && i > 0);
    WriteAll(" seed=");
    WriteAll(buf + i);
  }
  WriteAll("\n");
  raise(signo);  // SA_RESETHAND: the default action now.
}

// The command line that replays one seed: this run's flags, minus the
// seed range and the parallelism, plus --seed and --trace.
std::string ReplayCommand(const std::vector<std::string>& args, uint64_t seed) {
  std::string out = absl::StrCat("blizzard_sim --seed=", seed, " --trace");
  for (const std::string& a : args) {
    if (absl::StartsWith(a, "--seed") || absl::StartsWith(a, "--jobs") ||
        absl::StartsWith(a, "--quiet") || absl::StartsWith(a, "--trace")) {
      continue;
    }
    absl::StrAppend(&out, " ", a);
  }
  return out;
}

bool ParseRange(const std::string& text, uint64_t* lo, uint64_t* hi) {
  std::vector<std::string> parts = absl::StrSplit(text, "..");
  return parts.size() == 2 && absl::SimpleAtoi(parts[0], lo) && absl::SimpleAtoi(parts[1], hi) &&
         *lo <= *hi;
}

bool ApplyBug(const std::string& bug, BugOptions* bugs) {
  if (bug == "none") return true;
  if (bug == "send_before_persist") {
    bugs->driver.send_before_persist = true;
  } else if (bug == "volatile_sessions") {
    bugs->volatile_sessions = true;
  } else if (bug == "no_dedup") {
    bugs->no_dedup = true;
  } else if (bug == "stale_reads") {
    bugs->driver.reads_without_read_index = true;
  } else {
    return false;
  }
  return true;
}

SimulatorOptions OptionsFor(uint64_t seed, const SimulatorOptions& base) {
  SimulatorOptions o = absl::GetFlag(FLAGS_swarm) ? SwarmOptions(seed, base) : base;
  o.seed = seed;
  if (absl::GetFlag(FLAGS_nodes) > 0) o.nodes = absl::GetFlag(FLAGS_nodes);
  if (absl::GetFlag(FLAGS_clients) > 0) o.clients = absl::GetFlag(FLAGS_clients);
  if (absl::GetFlag(FLAGS_keys) > 0) o.keys = absl::GetFlag(FLAGS_keys);
  if (absl::GetFlag(FLAGS_spare_nodes) >= 0) o.spare_nodes = absl::GetFlag(FLAGS_spare_nodes);
  if (o.nodes + o.spare_nodes > 7) o.spare_nodes = 7 - o.nodes;
  if (absl::GetFlag(FLAGS_compact_every) >= 0) {
    o.compact_every_entries = static_cast<uint64_t>(absl::GetFlag(FLAGS_compact_every));
  }
  if (absl::GetFlag(FLAGS_compact_keep) >= 0) {
    o.compact_keep_entries = static_cast<uint64_t>(absl::GetFlag(FLAGS_compact_keep));
  }
  if (absl::GetFlag(FLAGS_lease_reads) >= 0) o.lease_reads = absl::GetFlag(FLAGS_lease_reads) == 1;
  if (absl::GetFlag(FLAGS_log_ring_kib) > 0) {
    o.log_ring_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_log_ring_kib)) * 1024;
  }
  FaultOptions& f = o.faults;
  if (absl::GetFlag(FLAGS_drop) >= 0) f.drop_probability = absl::GetFlag(FLAGS_drop);
  if (absl::GetFlag(FLAGS_duplicate) >= 0) f.duplicate_probability = absl::GetFlag(FLAGS_duplicate);
  if (absl::GetFlag(FLAGS_reorder) >= 0) f.reorder_probability = absl::GetFlag(FLAGS_reorder);
  if (absl::GetFlag(FLAGS_delay_us_max) >= 0) {
    f.delay_us_max = std::max(absl::GetFlag(FLAGS_delay_us_max), f.delay_us_min);
  }
  if (absl::GetFlag(FLAGS_fault_interval_ms) >= 0) {
    f.nemesis_interval_us_mean = absl::GetFlag(FLAGS_fault_interval_ms) * 1000;
  }
  if (!absl::GetFlag(FLAGS_fault_weights).empty()) {
    std::vector<std::string> parts = absl::StrSplit(absl::GetFlag(FLAGS_fault_weights), ',');
    for (size_t i = 0; i < parts.size() && i < std::size(f.weights); ++i) {
      (void)absl::SimpleAtoi(parts[i], &f.weights[i]);
    }
  }
  if (absl::GetFlag(FLAGS_crash_point_probability) >= 0) {
    f.crash_point_probability = absl::GetFlag(FLAGS_crash_point_probability);
  }
  if (absl::GetFlag(FLAGS_no_faults)) {
    f.nemesis_interval_us_mean = 0;
    f.drop_probability = f.duplicate_probability = f.reorder_probability = 0;
  }
  return o;
}

int Main(const std::vector<std::string>& args) {
  SimulatorOptions base;
  base.steps = absl::GetFlag(FLAGS_steps);
  base.election_timeout_ticks = absl::GetFlag(FLAGS_election_timeout_ticks);
  base.check_persist_before_send = absl::GetFlag(FLAGS_contract_check);
  base.entries_before_term = absl::GetFlag(FLAGS_entries_before_term);
  base.lease_with_server_clock = absl::GetFlag(FLAGS_lease_with_server_clock);
  if (!ApplyBug(absl::GetFlag(FLAGS_bug), &base.bugs)) {
    std::fprintf(stderr, "unknown --bug=%s\n", absl::GetFlag(FLAGS_bug).c_str());
    return 2;
  }
  uint64_t lo = 0;
  uint64_t hi = 0;
  if (absl::GetFlag(FLAGS_seed) >= 0) {
    lo = hi = static_cast<uint64_t>(absl::GetFlag(FLAGS_seed));
  } else if (!ParseRange(absl::GetFlag(FLAGS_seeds), &lo, &hi)) {
    std::fprintf(stderr, "give --seed=N or --seeds=A..B\n");
    return 2;
  }
  const bool single = lo == hi;
  if (absl::GetFlag(FLAGS_trace) && !single) {
    std::fprintf(stderr, "--trace needs a single seed\n");
    return 2;
  }
  if (absl::Status s = ValidateSimulatorOptions(OptionsFor(lo, base)); !s.ok()) {
    std::fprintf(stderr, "bad options: %s\n", std::string(s.message()).c_str());
    return 2;
  }

  const auto start = std::chrono::steady_clock::now();
  const auto elapsed_s = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::atomic<uint64_t> next{lo};
  std::atomic<uint64_t> done{0};
  std::mutex mu;
  std::vector<uint64_t> failed;
  double last_progress_s = 0;
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) {
    struct sigaction sa{};
    sa.sa_handler = OnFatalSignal;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigaction(sig, &sa, nullptr);
  }
  const auto worker = [&](int job) {
    // The handler must run even after a stack overflow.
    static thread_local std::vector<char> alt_stack(1 << 16);
    stack_t ss{};
    ss.ss_sp = alt_stack.data();
    ss.ss_size = alt_stack.size();
    sigaltstack(&ss, nullptr);
    for (uint64_t seed = next++; seed <= hi; seed = next++) {
      g_running[job] = seed;  // (Seed 0 would not be named.)
      SimulatorOptions o = OptionsFor(seed, base);
      if (absl::GetFlag(FLAGS_trace)) o.trace_out = stdout;
      const SimulationResult r = RunSimulation(o);
      g_running[job] = 0;
      std::lock_guard<std::mutex> lock(mu);
      ++done;
      if (!r.ok) {
        failed.push_back(seed);
        std::printf("%s\n", r.Summary().c_str());
        std::printf("  replay: %s\n", ReplayCommand(args, seed).c_str());
      } else if (single || !absl::GetFlag(FLAGS_quiet)) {
        std::printf("%s\n", r.Summary().c_str());
      } else if (elapsed_s() - last_progress_s >= 10) {
        last_progress_s = elapsed_s();
        std::printf("... %llu seeds, %zu failed, %.1f seeds/s\n",
                    static_cast<unsigned long long>(done.load()), failed.size(),
                    done / last_progress_s);
      }
      std::fflush(stdout);
    }
  };
  const int jobs = single ? 1 : std::clamp(absl::GetFlag(FLAGS_jobs), 1, kJobsMax);
  std::vector<std::thread> threads;
  for (int j = 0; j < jobs; ++j) threads.emplace_back(worker, j);
  for (std::thread& t : threads) t.join();

  const double s = elapsed_s();
  std::sort(failed.begin(), failed.end());
  std::printf("%llu seeds in %.1f s (%.1f seeds/s, %d jobs): %zu failed\n",
              static_cast<unsigned long long>(hi - lo + 1), s, (hi - lo + 1) / s, jobs,
              failed.size());
  for (uint64_t seed : failed) std::printf("  failed: seed=%llu\n", static_cast<unsigned long long>(seed));
  return failed.empty() ? 0 : 1;
}

}  // namespace
}  // namespace blizzard::sim

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Deterministic Blizzard cluster simulator. See tools/sim/README.md.");
  absl::ParseCommandLine(argc, argv);
  return blizzard::sim::Main(std::vector<std::string>(argv + 1, argv + argc));
}
