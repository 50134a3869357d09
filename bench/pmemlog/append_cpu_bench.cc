// The CPU half of a pmemlog append, alone: LogCore::Append over a DRAM
// buffer through a Persistence whose streaming copies, flushes and fences do
// nothing, so no byte of the ring is written and no fence waits. What is
// left is the work per entry (validation, header, checksums, staging, index)
// that pmemlog_bench's log side pays on top of (or overlapped with) its
// memory traffic. Compare its ns per entry with the raw limit's time per
// entry in pmemlog_bench (pmemlog/README.md, "Where the time goes").
//
//   bazel run -c opt //bench/pmemlog:append_cpu_bench
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/internal/raw_logging.h"
#include "benchmark/benchmark.h"
#include "pmemlog/log_core.h"
#include "pmemlog/log_format.h"

namespace blizzard::bench {
namespace {

using pmemlog::LogCore;
using pmemlog::LogEntry;

// Stores and 8-byte stores (meta block, Format) are real, so recovery and
// the slot logic run as usual; the ring's streaming copies and every flush
// and fence are dropped.
class NoTrafficPersistence final : public pmemlog::Persistence {
 public:
  explicit NoTrafficPersistence(uint64_t bytes)
      : region_(static_cast<uint8_t*>(std::aligned_alloc(4096, bytes))), bytes_(bytes) {
    std::memset(region_.get(), 0, bytes);
  }
  uint8_t* base() const override { return region_.get(); }
  uint64_t size_bytes() const override { return bytes_; }
  void Store(void* dst, const void* src, uint64_t len) override { std::memcpy(dst, src, len); }
  void Store64(uint64_t* dst, uint64_t value) override { *dst = value; }
  void CopyNoDrain(void* dst, const void* src, uint64_t len) override {
    std::memcpy(dst, src, len);
  }
  void StreamNoDrain(void* dst, const void* src, uint64_t len) override {
    benchmark::DoNotOptimize(dst);
    benchmark::DoNotOptimize(src);
    benchmark::DoNotOptimize(len);
  }
  void Store64NoDrain(uint64_t* dst, uint64_t value) override { *dst = value; }
  void Flush(const void*, uint64_t) override {}
  void Drain() override {}

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> region_;
  const uint64_t bytes_;
};

constexpr uint64_t kRegionBytes = 64ull << 20;

void BM_AppendCpu(benchmark::State& state) {
  const uint64_t entry_bytes = static_cast<uint64_t>(state.range(0));
  const uint64_t batch = static_cast<uint64_t>(state.range(1));
  NoTrafficPersistence persistence(kRegionBytes);
  const pmemlog::RegionLayout layout{0, 4096, kRegionBytes - 4096};
  ABSL_RAW_CHECK(LogCore::Format(&persistence, layout, {1, 1}).ok(), "format");
  absl::StatusOr<std::unique_ptr<LogCore>> core = LogCore::Open(&persistence, 0, std::nullopt);
  ABSL_RAW_CHECK(core.ok(), "open");
  LogCore& log = **core;
  std::vector<std::string> payloads(batch, std::string(entry_bytes, '\x5a'));
  std::vector<LogEntry> entries(batch);
  for (uint64_t i = 0; i < batch; ++i) {
    entries[i].term = 1;
    entries[i].payload = payloads[i];
  }
  const uint64_t batch_bytes = batch * pmemlog::format::RecordBytes(entry_bytes);
  // One lap first, so the volatile index has reached its size.
  const uint64_t warm_batches = log.BytesCapacity() / batch_bytes - 1;
  auto append = [&] {
    if (log.BytesUsed() + batch_bytes > log.BytesCapacity()) {
      ABSL_RAW_CHECK(log.CompactPrefix(log.LastIndex() + 1).ok(), "compact");
    }
    uint64_t next = log.LastIndex() + 1;
    for (LogEntry& e : entries) e.index = next++;
    ABSL_RAW_CHECK(log.Append(entries).ok(), "append");
  };
  for (uint64_t i = 0; i < warm_batches; ++i) append();
  for (auto _ : state) append();
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch * entry_bytes));
  state.counters["ns_per_entry"] = benchmark::Counter(
      static_cast<double>(state.iterations() * batch),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

BENCHMARK(BM_AppendCpu)
    ->ArgNames({"entry_bytes", "batch"})
    ->ArgsProduct({{64, 256, 1024, 4096}, {1, 8, 64}});

}  // namespace
}  // namespace blizzard::bench

BENCHMARK_MAIN();
