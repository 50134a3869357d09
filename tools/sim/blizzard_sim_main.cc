// blizzard_sim: runs the deterministic cluster simulator over one seed (with
// an optional readable trace) or a range of seeds (soak). See README.md.
//
//   blizzard_sim --seed=42 --trace          replay one seed, every event
//   blizzard_sim --seeds=1..100000 --jobs=2 soak
//
// Exit status: 0 if every seed passed, 1 if any failed, 2 on bad flags.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
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
ABSL_FLAG(int, clients, 0, "Clients, 1..64 (0: from the seed with --swarm, else 4).");
ABSL_FLAG(int, keys, 0, "Keys (0: from the seed with --swarm, else 4).");
ABSL_FLAG(int64_t, steps, 20000, "Instants of the faulty phase.");
ABSL_FLAG(double, drop, -1, "Message drop probability (-1: from the seed / default).");
ABSL_FLAG(double, duplicate, -1, "Message duplication probability (-1: from the seed / default).");
ABSL_FLAG(double, reorder, -1, "Message reordering probability (-1: from the seed / default).");
ABSL_FLAG(int64_t, delay_us_max, -1, "Largest message delay in us (-1: from the seed / default).");
ABSL_FLAG(int64_t, fault_interval_ms, -1,
          "Mean time between nemesis actions in ms; 0: no crashes, partitions or pauses "
          "(-1: from the seed / default).");
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
ABSL_FLAG(int64_t, log_ring_kib, 1024, "Each node's pmemlog ring, KiB.");
ABSL_FLAG(bool, quiet, false, "Print only failures and the summary.");

namespace blizzard::sim {
namespace {

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
  if (absl::GetFlag(FLAGS_no_faults)) {
    f.nemesis_interval_us_mean = 0;
    f.drop_probability = f.duplicate_probability = f.reorder_probability = 0;
  }
  return o;
}

int Main() {
  SimulatorOptions base;
  base.steps = absl::GetFlag(FLAGS_steps);
  base.log_ring_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_log_ring_kib)) * 1024;
  base.check_persist_before_send = absl::GetFlag(FLAGS_contract_check);
  base.entries_before_term = absl::GetFlag(FLAGS_entries_before_term);
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
  const auto worker = [&] {
    for (uint64_t seed = next++; seed <= hi; seed = next++) {
      SimulatorOptions o = OptionsFor(seed, base);
      if (absl::GetFlag(FLAGS_trace)) o.trace_out = stdout;
      const SimulationResult r = RunSimulation(o);
      std::lock_guard<std::mutex> lock(mu);
      ++done;
      if (!r.ok) {
        failed.push_back(seed);
        std::printf("%s\n", r.Summary().c_str());
        std::printf("  replay: blizzard_sim --seed=%llu --trace%s\n",
                    static_cast<unsigned long long>(seed),
                    absl::GetFlag(FLAGS_bug) == "none"
                        ? ""
                        : (" --bug=" + absl::GetFlag(FLAGS_bug)).c_str());
      } else if (single || !absl::GetFlag(FLAGS_quiet)) {
        if (single) {
          std::printf("%s\n", r.Summary().c_str());
        } else if (elapsed_s() - last_progress_s >= 10) {
          last_progress_s = elapsed_s();
          std::printf("... %llu seeds, %zu failed, %.1f seeds/s\n",
                      static_cast<unsigned long long>(done.load()), failed.size(),
                      done / last_progress_s);
        }
      }
      std::fflush(stdout);
    }
  };
  const int jobs = single ? 1 : std::max(1, absl::GetFlag(FLAGS_jobs));
  std::vector<std::thread> threads;
  for (int j = 0; j < jobs; ++j) threads.emplace_back(worker);
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
  return blizzard::sim::Main();
}
