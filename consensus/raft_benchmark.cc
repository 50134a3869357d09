// Cost of the Raft state machine itself, without I/O: a 3-node group in one
// thread, messages handed over directly (or through the wire codec), storage
// in memory. Reports committed entries per second and wire bytes per entry.
//
//   bazel run -c opt //consensus:raft_benchmark
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/internal/raw_logging.h"
#include "benchmark/benchmark.h"
#include "consensus/codec.h"
#include "consensus/raft.h"

namespace blizzard::consensus {
namespace {

class Group {
 public:
  explicit Group(bool through_codec) : through_codec_(through_codec) {
    for (NodeId id : {1, 2, 3}) {
      Config c;
      c.id = id;
      c.voters = {1, 2, 3};
      c.random_seed = 7;
      storage_[id] = std::make_unique<MemoryStorage>();
      raft_[id] = std::move(*Raft::Create(c, storage_[id].get()));
    }
    raft_[1]->Campaign();
    Pump();
    ABSL_RAW_CHECK(raft_[1]->role() == Role::kLeader, "no leader");
  }

  Raft& leader() { return *raft_[1]; }

  // Delivers everything until no node has a Ready.
  void Pump() {
    bool busy = true;
    while (busy) {
      busy = false;
      for (auto& [id, raft] : raft_) {
        while (raft->HasReady()) {
          busy = true;
          Ready rd = raft->GetReady();
          MemoryStorage& s = *storage_[id];
          if (rd.hard_state) s.SetHardState(*rd.hard_state);
          (void)s.Append(rd.entries);
          for (Message& m : rd.messages) {
            if (m.type == MessageType::kAppend) {
              entries_sent_ += m.entries.size();
            }
            if (through_codec_) {
              std::string wire = EncodeMessage(m);
              wire_bytes_ += wire.size();
              queue_.push_back(*DecodeMessage(absl::MakeConstSpan(
                  reinterpret_cast<const uint8_t*>(wire.data()), wire.size())));
            } else {
              queue_.push_back(std::move(m));
            }
            ++messages_;
          }
          if (!rd.committed.empty()) committed_ = rd.committed.back().index;
          raft->Advance(rd);
          // Keep memory flat: everything applied everywhere can go.
          if (s.LastIndex() > 4096) {
            (void)s.Compact(raft->applied_index() - 1024);
          }
        }
      }
      for (Message& m : queue_) (void)raft_[m.to]->Step(m);
      if (!queue_.empty()) busy = true;
      queue_.clear();
    }
  }

  uint64_t messages() const { return messages_; }
  uint64_t wire_bytes() const { return wire_bytes_; }
  uint64_t entries_sent() const { return entries_sent_; }

 private:
  bool through_codec_;
  std::map<NodeId, std::unique_ptr<MemoryStorage>> storage_;
  std::map<NodeId, std::unique_ptr<Raft>> raft_;
  std::vector<Message> queue_;
  Index committed_ = 0;
  uint64_t messages_ = 0;
  uint64_t wire_bytes_ = 0;
  uint64_t entries_sent_ = 0;
};

// range(0): entries proposed per pump (a loop iteration's batch count);
// range(1): payload bytes; range(2): 1 = through the codec.
void BM_ReplicateAndCommit(benchmark::State& state) {
  const int per_round = static_cast<int>(state.range(0));
  const std::string payload(static_cast<size_t>(state.range(1)), 'x');
  Group g(state.range(2) != 0);
  uint64_t proposed = 0;
  for (auto _ : state) {
    for (int i = 0; i < per_round; ++i) {
      auto index = g.leader().Propose(payload);
      benchmark::DoNotOptimize(index);
    }
    proposed += per_round;
    g.Pump();
  }
  state.SetItemsProcessed(static_cast<int64_t>(proposed));
  state.counters["msgs_per_entry"] =
      static_cast<double>(g.messages()) / static_cast<double>(proposed);
  if (state.range(2) != 0) {
    // Wire bytes (all messages, both directions) per committed entry,
    // beyond the payload each follower must receive anyway.
    state.counters["wire_bytes_per_entry"] =
        static_cast<double>(g.wire_bytes()) / static_cast<double>(proposed);
    state.counters["overhead_bytes_per_entry"] =
        static_cast<double>(g.wire_bytes()) / static_cast<double>(proposed) -
        2.0 * static_cast<double>(payload.size());
  }
}
BENCHMARK(BM_ReplicateAndCommit)
    ->Args({1, 64, 0})
    ->Args({1, 64, 1})
    ->Args({16, 64, 0})
    ->Args({16, 64, 1})
    ->Args({1, 4096, 1});

void BM_EncodeDecodeAppend(benchmark::State& state) {
  Message m;
  m.type = MessageType::kAppend;
  m.from = 1;
  m.to = 2;
  m.term = 3;
  m.index = 100;
  m.log_term = 3;
  for (int i = 0; i < state.range(0); ++i) {
    m.entries.push_back(Entry{3, 101 + static_cast<Index>(i),
                              EntryType::kNormal, std::string(64, 'x')});
  }
  uint64_t bytes = 0;
  for (auto _ : state) {
    std::string wire = EncodeMessage(m);
    auto d = DecodeMessage(absl::MakeConstSpan(
        reinterpret_cast<const uint8_t*>(wire.data()), wire.size()));
    benchmark::DoNotOptimize(d);
    bytes += wire.size();
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_EncodeDecodeAppend)->Arg(1)->Arg(64);

}  // namespace
}  // namespace blizzard::consensus

BENCHMARK_MAIN();
