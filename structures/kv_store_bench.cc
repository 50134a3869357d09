// ApplyBatch throughput: batches of N SETs of 128-byte values over a
// pre-populated key space, one transaction per batch.
//   bazel run //structures:kv_store_bench
// Reports items_per_second = ops/s (wall clock); batches/s = ops/s / N.
#include <unistd.h>

#include <cstdlib>
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

void BM_ApplyBatchSets(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const std::string path = absl::StrCat("/dev/shm/blizzard_structures_bench_", getpid());
  unlink(path.c_str());
  StoreOptions o;
  o.path = path;
  o.pool_bytes = 1ull << 30;
  o.initial_bucket_count = 1u << 17;  // No resize inside the timed loop.
  auto opened = KvStore::Open(o);
  if (!opened.ok()) {
    state.SkipWithError(std::string(opened.status().message()).c_str());
    return;
  }
  std::unique_ptr<KvStore> store = std::move(*opened);
  uint64_t index = 0;
  const std::string value(kValueBytes, 'v');
  for (uint64_t i = 0; i < kKeys; i += 1000) {  // Pre-populate.
    std::vector<Op> ops;
    for (uint64_t k = i; k < i + 1000; ++k) ops.push_back(Op{OpCode::kSet, {Key(k), value}, 0});
    if (!store->ApplyBatch(++index, ops).ok()) std::abort();
  }
  std::mt19937_64 rng(1);
  // Batches prepared outside the timed region.
  std::vector<std::vector<Op>> batches(1024);
  for (auto& ops : batches) {
    for (size_t i = 0; i < batch; ++i) {
      std::string v = value;
      v[0] = static_cast<char>('a' + rng() % 26);
      ops.push_back(Op{OpCode::kSet, {Key(rng() % kKeys), std::move(v)}, 0});
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

}  // namespace
}  // namespace blizzard::structures

int main(int argc, char** argv) {
  setenv("PMEM_IS_PMEM_FORCE", "1", 0);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
