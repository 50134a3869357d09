// ApplyBatch throughput: batches of N SETs of 128-byte values over a
// pre-populated key space, one transaction per batch; batches of 32 ZADDs
// into sorted sets of a given size.
//   bazel run //structures:kv_store_bench
// Reports items_per_second = ops/s (wall clock); batches/s = ops/s / N.
//
// BM_LoadWorstBatch: the latency of single batches (what stalls a node's
// event loop) while loading 1 M keys through many table resizes, then the
// cost of reopening that pool with and without verification.
// BLIZZARD_BENCH_KEYS overrides the key count.
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "structures/kv_store.h"

namespace blizzard::structures {
namespace {

constexpr uint64_t kKeys = 100000;
constexpr size_t kValueBytes = 128;

std::string Key(uint64_t i) { return absl::StrCat("key:", i); }

// A new store in a fresh pool file at `path`; nullptr (the benchmark
// skipped with the error) if it cannot be opened.
std::unique_ptr<KvStore> FreshStore(benchmark::State& state, const std::string& path,
                                    uint64_t pool_bytes) {
  unlink(path.c_str());
  StoreOptions o;
  o.path = path;
  o.pool_bytes = pool_bytes;
  auto opened = KvStore::Open(o);
  if (!opened.ok()) {
    state.SkipWithError(std::string(opened.status().message()).c_str());
    return nullptr;
  }
  return std::move(*opened);
}

void BM_ApplyBatchSets(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const std::string path = absl::StrCat("/dev/shm/blizzard_structures_bench_", getpid());
  std::unique_ptr<KvStore> store = FreshStore(state, path, 1ull << 30);
  if (store == nullptr) return;
  uint64_t index = 0;
  const std::string value(kValueBytes, 'v');
  for (uint64_t i = 0; i < kKeys; i += 1000) {  // Pre-populate.
    std::vector<Op> ops;
    for (uint64_t k = i; k < i + 1000; ++k) ops.push_back(Op{OpCode::kSet, {Key(k), value}, 0, {}});
    if (!store->ApplyBatch(++index, ops).ok()) std::abort();
  }
  std::mt19937_64 rng(1);
  // Batches prepared outside the timed region.
  std::vector<std::vector<Op>> batches(1024);
  for (auto& ops : batches) {
    for (size_t i = 0; i < batch; ++i) {
      std::string v = value;
      v[0] = static_cast<char>('a' + rng() % 26);
      ops.push_back(Op{OpCode::kSet, {Key(rng() % kKeys), std::move(v)}, 0, {}});
    }
  }
  const uint64_t bytes_before = store->Stats().bytes_written;
  size_t next = 0;
  for (auto _ : state) {
    auto r = store->ApplyBatch(++index, batches[next++ % batches.size()]);
    if (!r.ok()) std::abort();
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  state.counters["pool_bytes_per_op"] = benchmark::Counter(
      static_cast<double>(store->Stats().bytes_written - bytes_before) /
      static_cast<double>(state.iterations() * batch));
  store.reset();
  unlink(path.c_str());
}
BENCHMARK(BM_ApplyBatchSets)->Arg(1)->Arg(32)->UseRealTime();

// ZADD batches: 32 inserts of new 128-byte members with random scores into
// 1,000 sorted sets pre-populated with state.range(0) members each (the
// B+tree's leaf search and splits, the member map, the allocator).
void BM_ApplyBatchZadds(benchmark::State& state) {
  constexpr uint64_t kSets = 1000;
  constexpr size_t kBatch = 32;
  const uint64_t members = static_cast<uint64_t>(state.range(0));
  const std::string path = absl::StrCat("/dev/shm/blizzard_structures_bench_z_", getpid());
  std::unique_ptr<KvStore> store = FreshStore(state, path, 512ull << 20);
  if (store == nullptr) return;
  std::mt19937_64 rng(1);
  uint64_t index = 0, seq = 0;
  std::vector<Op> ops;
  auto fill = [&](uint64_t set) {
    std::string member = absl::StrCat("m:", seq++, ":");
    member.resize(kValueBytes, 'v');
    ops.push_back(Op{OpCode::kZAdd,
                     {absl::StrCat("zset:", set), std::move(member)},
                     0,
                     {static_cast<double>(rng() % (uint64_t{1} << 31))}});
  };
  for (uint64_t i = 0; i < members; ++i) {  // Pre-populate.
    ops.clear();
    for (uint64_t set = 0; set < kSets; ++set) fill(set);
    if (!store->ApplyBatch(++index, ops).ok()) std::abort();
  }
  for (auto _ : state) {
    ops.clear();
    for (size_t i = 0; i < kBatch; ++i) fill(rng() % kSets);
    auto r = store->ApplyBatch(++index, ops);
    if (!r.ok()) std::abort();
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBatch));
  store.reset();
  unlink(path.c_str());
}
BENCHMARK(BM_ApplyBatchZadds)->Arg(8)->Arg(200)->UseRealTime();

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Peak resident set since the last ResetPeakRss(), in MiB (VmHWM).
void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }
double PeakRssMiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  return 0;
}

void BM_LoadWorstBatch(benchmark::State& state) {
  const char* env = std::getenv("BLIZZARD_BENCH_KEYS");
  const uint64_t keys = env != nullptr ? std::strtoull(env, nullptr, 10) : 1000000;
  constexpr size_t kBatch = 32;
  const std::string path = absl::StrCat("/dev/shm/blizzard_structures_bench_load_", getpid());
  const std::string value(kValueBytes, 'v');
  for (auto _ : state) {
    unlink(path.c_str());
    StoreOptions o;
    o.path = path;
    o.pool_bytes = 2ull << 30;
    // The default initial table: the load goes through ten doublings.
    auto opened = KvStore::Open(o);
    if (!opened.ok()) {
      state.SkipWithError(std::string(opened.status().message()).c_str());
      return;
    }
    std::unique_ptr<KvStore> store = std::move(*opened);
    // libpmemobj initializes its run-time state in the first transaction
    // after open (~10 ms): an empty batch takes that out of the figures.
    uint64_t index = 1;
    if (!store->ApplyBatch(index, {}).ok()) std::abort();
    std::vector<double> wall_us;
    wall_us.reserve(keys / kBatch + 1);
    double cpu_us_max = 0;
    double resize_start_us_max = 0;
    double other_us_max = 0;
    const double load_start = WallSeconds();
    std::vector<Op> ops;
    for (uint64_t k = 0; k < keys;) {
      ops.clear();
      for (; ops.size() < kBatch && k < keys; ++k) {
        ops.push_back(Op{OpCode::kSet, {Key(k), value}, 0, {}});
      }
      const bool resizing = store->Info().resizing;
      const double cpu0 = ThreadCpuSeconds();
      const double wall0 = WallSeconds();
      if (!store->ApplyBatch(++index, ops).ok()) std::abort();
      const double us = (WallSeconds() - wall0) * 1e6;
      wall_us.push_back(us);
      cpu_us_max = std::max(cpu_us_max, (ThreadCpuSeconds() - cpu0) * 1e6);
      // Batches that start a resize allocate (and zero) the new array.
      if (!resizing && store->Info().resizing) {
        resize_start_us_max = std::max(resize_start_us_max, us);
      } else {
        other_us_max = std::max(other_us_max, us);
      }
    }
    const double load_s = WallSeconds() - load_start;
    std::sort(wall_us.begin(), wall_us.end());
    auto pct = [&](double p) {
      return wall_us[std::min(wall_us.size() - 1, static_cast<size_t>(p * wall_us.size()))];
    };
    state.counters["batch_us_max"] = wall_us.back();
    state.counters["batch_cpu_us_max"] = cpu_us_max;
    state.counters["resize_start_batch_us_max"] = resize_start_us_max;
    state.counters["other_batch_us_max"] = other_us_max;
    state.counters["batch_us_p50"] = pct(0.5);
    state.counters["batch_us_p99"] = pct(0.99);
    state.counters["batch_us_p999"] = pct(0.999);
    state.counters["load_s"] = load_s;
    store.reset();
    // Reopen: with the full verification walk (the default), then without.
    for (const bool verify : {true, false}) {
      o.create_if_missing = false;
      o.verify_on_open = verify;
      ResetPeakRss();
      const double rss_before = PeakRssMiB();
      const double t0 = WallSeconds();
      const double cpu0 = ThreadCpuSeconds();
      auto reopened = KvStore::Open(o);
      const double open_s = WallSeconds() - t0;
      const double open_cpu_s = ThreadCpuSeconds() - cpu0;
      if (!reopened.ok()) {
        state.SkipWithError(std::string(reopened.status().message()).c_str());
        return;
      }
      if ((*reopened)->Size() != keys) std::abort();
      state.counters[verify ? "open_verify_s" : "open_s"] = open_s;
      state.counters[verify ? "open_verify_cpu_s" : "open_cpu_s"] = open_cpu_s;
      if (verify) state.counters["open_verify_peak_rss_mib"] = PeakRssMiB() - rss_before;
    }
    unlink(path.c_str());
  }
}
BENCHMARK(BM_LoadWorstBatch)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

}  // namespace
}  // namespace blizzard::structures

int main(int argc, char** argv) {
  setenv("PMEM_IS_PMEM_FORCE", "1", 0);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
