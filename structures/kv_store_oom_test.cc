// A full arena fails one op, never a batch: the op that cannot allocate is
// undone back to its savepoint and answers Redis's OOM error, the rest of
// the batch and the applied index commit, and every replica (the same
// bytes, the same deterministic allocator) fails the same op the same way.
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "structures/arena_testing.h"
#include "structures/kv_store.h"
#include "structures/sim_memory.h"
#include "structures/test_util.h"

namespace blizzard::structures {
namespace {

using Kind = OpResult::Kind;

Op Set(std::string k, std::string v) {
  return Op{OpCode::kSet, {std::move(k), std::move(v)}, 0, {}};
}
Op Del(std::vector<std::string> keys) { return Op{OpCode::kDel, std::move(keys), 0, {}}; }
Op IncrBy(std::string k, int64_t d) { return Op{OpCode::kIncrBy, {std::move(k)}, d, {}}; }

bool IsOom(const OpResult& r) { return r.kind == Kind::kError && r.text == kOutOfMemoryError; }

std::unique_ptr<KvStore> OpenSim(SimMemory& mem) {
  auto s = KvStore::OpenMemory(&mem);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

// Random typed batches that fill a small arena: many keys, values up to
// `value_bytes_max` and occasional `big_value_bytes` ones.
testing::RandomOpOptions Filling(uint64_t keys, size_t value_bytes_max, size_t big_value_bytes,
                                 size_t ops_max) {
  testing::RandomOpOptions gen;
  gen.keys = keys;
  gen.value_bytes_max = value_bytes_max;
  gen.big_value_bytes = big_value_bytes;
  gen.ops_max = ops_max;
  return gen;
}

// The ops that did not answer OOM, and their results.
void WithoutOom(const std::vector<Op>& ops, const std::vector<OpResult>& results,
                std::vector<Op>* kept_ops, std::vector<OpResult>* kept_results) {
  for (size_t i = 0; i < ops.size(); ++i) {
    if (IsOom(results[i])) continue;
    kept_ops->push_back(ops[i]);
    kept_results->push_back(results[i]);
  }
}

// Two replicas of a small arena fed identical random typed batches until
// many ops found it full: their bytes stay identical, the OOM op is the only
// casualty (a store and a model that never saw it agree on every result,
// the content and the state hash), and deleting frees room for new writes.
TEST(KvStoreOomTest, OnlyTheOpThatCannotAllocateFailsOnEveryReplica) {
  const uint64_t seed = 0x00f1;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  constexpr uint64_t kArenaBytes = 256 << 10;
  SimMemory a_mem(kArenaBytes), b_mem(kArenaBytes), c_mem(4 << 20);
  auto a = OpenSim(a_mem);
  auto b = OpenSim(b_mem);
  auto c = OpenSim(c_mem);  // Never runs out: never sees an OOM op.
  ASSERT_TRUE(a && b && c);
  testing::Model model;
  std::mt19937_64 rng(seed);
  const testing::RandomOpOptions gen = Filling(700, 600, 6000, 6);
  uint64_t oom = 0, mixed = 0;
  std::vector<Op> failed_ops;  // Retried after the keys are deleted.
  for (uint64_t i = 1; i <= 800; ++i) {
    const std::vector<Op> ops = testing::RandomBatch(rng, gen);
    auto ra = a->ApplyBatch(i, ops);
    auto rb = b->ApplyBatch(i, ops);
    ASSERT_TRUE(ra.ok() && rb.ok()) << "index " << i << ": " << ra.status() << rb.status();
    ASSERT_EQ(*ra, *rb) << "index " << i;
    ASSERT_TRUE(a_mem.bytes() == b_mem.bytes()) << "index " << i << ": replicas differ";
    std::vector<Op> kept;
    std::vector<OpResult> kept_results;
    WithoutOom(ops, *ra, &kept, &kept_results);
    const uint64_t failed = ops.size() - kept.size();
    for (size_t k = 0; k < ops.size(); ++k) {
      if (!IsOom((*ra)[k])) continue;
      // Admission control lets these through on a full arena: they must
      // never need a block.
      ASSERT_TRUE(MayGrowMemory(ops[k].code)) << "op " << static_cast<int>(ops[k].code);
      if (failed_ops.size() < 40) failed_ops.push_back(ops[k]);
    }
    oom += failed;
    if (failed > 0 && !kept.empty()) mixed++;
    auto rc = c->ApplyBatch(i, kept);
    ASSERT_TRUE(rc.ok()) << rc.status();
    ASSERT_EQ(*rc, kept_results) << "index " << i;
    ASSERT_EQ(model.Apply(kept), kept_results) << "index " << i;
    ASSERT_EQ(a->AppliedIndex(), i);
    ASSERT_EQ(a->StateHash(), c->StateHash()) << "index " << i;
    ASSERT_EQ(a->StateHash(), model.StateHash()) << "index " << i;
    if (i % 50 == 0) {
      ASSERT_TRUE(a->Verify().ok()) << a->Verify();
      ASSERT_EQ(testing::Dump(*a), model.Dump()) << "index " << i;
    }
  }
  EXPECT_GT(oom, 30u);
  EXPECT_GT(mixed, 10u);  // Batches where other ops committed beside an OOM op.
  EXPECT_EQ(a->Stats().ops_out_of_memory, oom);
  EXPECT_EQ(c->Stats().ops_out_of_memory, 0u);
  const MemoryUsage full = a->Memory();
  EXPECT_EQ(full.capacity_bytes, kArenaBytes - arena_format::kHeapOffset);
  EXPECT_GT(full.used_bytes, full.capacity_bytes / 2);
  TableShape shape;
  ASSERT_TRUE(a->Verify(&shape).ok());
  EXPECT_EQ(shape.bytes_allocated, full.used_bytes);

  // Deleting every key frees the room; the writes that failed now succeed
  // (nearly all: a freed block serves only its own size class, so a value
  // bigger than every freed block still finds no room).
  std::vector<std::string> keys;
  a->ForEachKey([&](std::string_view k, ValueType) { keys.emplace_back(k); });
  const std::vector<Op> drop = {Del(keys)};
  uint64_t index = a->AppliedIndex();
  ASSERT_TRUE(a->ApplyBatch(++index, drop).ok());
  ASSERT_TRUE(b->ApplyBatch(index, drop).ok());
  EXPECT_LT(a->Memory().used_bytes, full.used_bytes / 4);
  uint64_t retried = 0, succeeded = 0;
  for (const Op& op : failed_ops) {
    auto r = a->ApplyBatch(++index, {op});
    ASSERT_TRUE(r.ok() && b->ApplyBatch(index, {op}).ok());
    retried++;
    succeeded += IsOom((*r)[0]) ? 0 : 1;
  }
  EXPECT_TRUE(a_mem.bytes() == b_mem.bytes());
  EXPECT_GT(succeeded, retried * 9 / 10) << succeeded << " of " << retried;
  ASSERT_TRUE(a->Verify().ok()) << a->Verify();
}

// The batch around an OOM op, op by op: the ops before and after it
// commit, the OOM op leaves no trace (the same state hash as a store
// that never saw it), and the same op succeeds once a DEL made room.
TEST(KvStoreOomTest, NeighboursCommitAndDeleteMakesRoom) {
  SimMemory mem(256 << 10), other_mem(256 << 10);
  auto store = OpenSim(mem);
  auto other = OpenSim(other_mem);
  ASSERT_TRUE(store && other);
  const std::string value(20000, 'v');
  uint64_t index = 0;
  int stored = 0;
  // Fill with 20 KB values until one does not fit.
  for (;; ++stored) {
    const std::vector<Op> ops = {Set(absl::StrCat("fill", stored), value)};
    auto r = store->ApplyBatch(++index, ops);
    ASSERT_TRUE(r.ok()) << r.status();
    if (IsOom((*r)[0])) break;
    ASSERT_TRUE(other->ApplyBatch(index, ops).ok());
    ASSERT_LT(stored, 100) << "the arena never filled";
  }
  EXPECT_EQ(store->AppliedIndex(), index);  // The OOM batch still advanced the index.
  ASSERT_TRUE(other->ApplyBatch(index, {}).ok());
  EXPECT_EQ(store->StateHash(), other->StateHash());
  EXPECT_TRUE(mem.bytes() == other_mem.bytes());

  const std::vector<Op> batch = {IncrBy("n", 5), Set("huge", value), Set("fill0", "small"),
                                 IncrBy("n", 1)};
  auto r = store->ApplyBatch(++index, batch);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0].integer, 5);
  EXPECT_TRUE(IsOom((*r)[1])) << (*r)[1].text;
  EXPECT_EQ((*r)[2].kind, Kind::kOk);
  EXPECT_EQ((*r)[3].integer, 6);
  EXPECT_EQ(store->Get("n"), "6");
  EXPECT_EQ(store->Get("huge"), std::nullopt);
  EXPECT_EQ(store->Get("fill0"), "small");
  ASSERT_TRUE(
      other->ApplyBatch(index, {IncrBy("n", 5), Set("fill0", "small"), IncrBy("n", 1)}).ok());
  EXPECT_EQ(store->StateHash(), other->StateHash());
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();

  // "fill0" shrank, which freed a 20 KB block: the same SET fits now.
  auto again = store->ApplyBatch(++index, {Set("huge", value)});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].kind, Kind::kOk);
  EXPECT_EQ(store->Get("huge"), value);
  EXPECT_EQ(store->Stats().ops_out_of_memory, 2u);
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();
}

// Space that large values freed serves small ones: filled with 16 KB
// values, emptied, then filled with 100-byte values, the arena ends mostly
// in use (the allocator splits the freed 16 KiB blocks) instead of refusing
// small values while nearly all of it sits on one free list.
TEST(KvStoreOomTest, SpaceFreedByLargeValuesServesSmallOnes) {
  SimMemory mem(1 << 20), twin_mem(1 << 20);
  auto store = OpenSim(mem);
  auto twin = OpenSim(twin_mem);  // The same batches: the same bytes.
  ASSERT_TRUE(store && twin);
  uint64_t index = 0;
  const auto apply = [&](const std::vector<Op>& ops) {
    auto r = store->ApplyBatch(++index, ops);
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(twin->ApplyBatch(index, ops).ok());
    return r.ok() && !IsOom(r->front());
  };
  std::vector<std::string> big;
  while (apply({Set(absl::StrCat("big", big.size()), std::string(16000, 'b'))})) {
    big.push_back(absl::StrCat("big", big.size()));
  }
  ASSERT_GT(big.size(), 40u);
  ASSERT_TRUE(apply({Del(big)}));
  const MemoryUsage empty = store->Memory();
  ASSERT_LT(empty.used_bytes, empty.capacity_bytes / 20);

  uint64_t small = 0;
  while (apply({Set(absl::StrCat("small", small), std::string(100, 's'))})) ++small;
  const MemoryUsage full = store->Memory();
  // 85% here: blocks never merge again, so the key table's growing
  // segments (4 KiB) find no room among the small pieces in the end.
  EXPECT_GT(full.used_bytes, full.capacity_bytes * 3 / 4) << small << " small values";
  EXPECT_GT(small, full.capacity_bytes / 320);
  EXPECT_EQ(store->Get("small0"), std::string(100, 's'));
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();
  EXPECT_TRUE(mem.bytes() == twin_mem.bytes());
}

// The epilogue (client sessions) must commit with the ops it describes:
// if its ops do not fit, all ops are undone and answer OOM and it is asked
// again; if that does not fit either, only the index commits.
TEST(KvStoreOomTest, EpilogueThatDoesNotFitUndoesTheBatch) {
  SimMemory mem(256 << 10);
  auto store = OpenSim(mem);
  ASSERT_NE(store, nullptr);
  const std::string value(20000, 'v');
  uint64_t index = 0;
  for (int i = 0;; ++i) {
    auto r = store->ApplyBatch(++index, {Set(absl::StrCat("fill", i), value)});
    ASSERT_TRUE(r.ok());
    if (IsOom((*r)[0])) break;
  }
  // Room for small values only.
  const uint64_t hash = store->StateHash();
  int calls = 0;
  std::vector<OpResult> seen;
  bool applied = false;
  auto r = store->ApplyBatch(
      ++index, {IncrBy("n", 1), Del({"fill0"})},
      [&](absl::Span<const OpResult> results) {
        ++calls;
        seen.assign(results.begin(), results.end());
        // First call: a record too big to fit (the DEL freed one 20 KB
        // block, this needs two); second: a small one.
        return std::vector<Op>{
            Set("record", IsOom(results[0]) ? std::string("oom") : std::string(45000, 'r'))};
      },
      nullptr, &applied);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(applied);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_TRUE(IsOom((*r)[0]) && IsOom((*r)[1]));
  EXPECT_EQ(seen, *r);
  EXPECT_EQ(store->Get("record"), "oom");
  EXPECT_EQ(store->Get("n"), std::nullopt);
  EXPECT_TRUE(store->Get("fill0").has_value());  // The DEL was undone too.
  EXPECT_NE(store->StateHash(), hash);
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();

  // An epilogue that never fits: dropped, only the index advances.
  const uint64_t hash2 = store->StateHash();
  calls = 0;
  r = store->ApplyBatch(
      ++index, {IncrBy("n", 1)},
      [&](absl::Span<const OpResult>) {
        ++calls;
        return std::vector<Op>{Set("record2", std::string(100000, 'r'))};
      },
      nullptr, &applied);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(calls, 2);
  EXPECT_FALSE(applied);
  EXPECT_TRUE(IsOom((*r)[0]));
  EXPECT_EQ(store->AppliedIndex(), index);
  EXPECT_EQ(store->StateHash(), hash2);
  EXPECT_EQ(store->Stats().epilogues_dropped, 1u);
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();
}

// Physical mode with sessions: ExecuteOnTop's prologue runs on top of the
// unapplied entries (its reads see them) and chooses the ops; the epilogue
// behaves exactly as ApplyBatch's (the OOM fallback, a dropped epilogue),
// and the write set, applied, gives the bytes a logical replica gets from
// ApplyBatch with the same ops and epilogue. A prologue error aborts.
TEST(KvStoreOomTest, ExecuteOnTopPrologueAndEpilogueMatchApplyBatch) {
  SimMemory leader_mem(256 << 10), logical_mem(256 << 10);
  auto leader = OpenSim(leader_mem);
  auto logical = OpenSim(logical_mem);
  ASSERT_TRUE(leader && logical);
  const std::string value(20000, 'v');
  uint64_t index = 0;
  for (int i = 0;; ++i) {
    const std::vector<Op> fill = {Set(absl::StrCat("fill", i), value)};
    auto r = leader->ApplyBatch(++index, fill);
    ASSERT_TRUE(r.ok() && logical->ApplyBatch(index, fill).ok());
    if (IsOom((*r)[0])) break;
  }
  // Entry index+1 in flight; index+2 built on top of it.
  const std::vector<Op> first = {Set("k", "in flight")};
  WriteSet ws1;
  ASSERT_TRUE(leader->ExecuteOnTop(index + 1, {}, first, &ws1).ok());
  ASSERT_TRUE(logical->ApplyBatch(index + 1, first).ok());
  const std::vector<uint8_t> before = leader_mem.bytes();
  const std::vector<Op> ops = {IncrBy("n", 1), Del({"fill0"})};
  int calls = 0;
  auto epilogue = [&](absl::Span<const OpResult> results) {
    ++calls;
    return std::vector<Op>{
        Set("record", IsOom(results[0]) ? std::string("oom") : std::string(45000, 'r'))};
  };
  std::optional<std::string> seen_by_prologue;
  auto prologue = [&]() -> absl::StatusOr<absl::Span<const Op>> {
    seen_by_prologue = leader->Get("k");
    return absl::MakeConstSpan(ops);
  };
  const std::vector<KvStore::UnappliedEntry> chain = {{index + 1, &ws1}};
  WriteSet ws2;
  bool applied = false;
  auto built = leader->ExecuteOnTop(index + 2, chain, prologue, epilogue, &ws2, &applied);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(seen_by_prologue, "in flight");
  EXPECT_EQ(leader_mem.bytes(), before);
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(applied);
  calls = 0;
  auto direct = logical->ApplyBatch(index + 2, ops, epilogue, nullptr, &applied);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(applied);
  EXPECT_EQ(*built, *direct);
  ASSERT_TRUE(leader->ApplyEntryWriteSet(index + 1, ws1, 1).ok());
  ASSERT_TRUE(leader->ApplyEntryWriteSet(index + 2, ws2, 2).ok());
  ASSERT_TRUE(leader_mem.bytes() == logical_mem.bytes());
  EXPECT_EQ(leader->Get("record"), "oom");

  // An epilogue that never fits: dropped on both, only the index advances.
  auto huge = [](absl::Span<const OpResult>) {
    return std::vector<Op>{Set("record2", std::string(100000, 'r'))};
  };
  const std::vector<Op> one = {IncrBy("n", 1)};
  auto just = [&]() -> absl::StatusOr<absl::Span<const Op>> { return absl::MakeConstSpan(one); };
  WriteSet ws3;
  built = leader->ExecuteOnTop(index + 3, {}, just, huge, &ws3, &applied);
  ASSERT_TRUE(built.ok());
  EXPECT_FALSE(applied);
  EXPECT_EQ(leader->Stats().epilogues_dropped, 1u);
  direct = logical->ApplyBatch(index + 3, one, huge, nullptr, &applied);
  EXPECT_FALSE(applied);
  EXPECT_EQ(*built, *direct);
  ASSERT_TRUE(leader->ApplyEntryWriteSet(index + 3, ws3, 1).ok());
  ASSERT_TRUE(leader_mem.bytes() == logical_mem.bytes());

  // A prologue that fails: its error, nothing changed.
  const std::vector<uint8_t> now = leader_mem.bytes();
  WriteSet ws4;
  auto failed = leader->ExecuteOnTop(
      index + 4, {},
      []() -> absl::StatusOr<absl::Span<const Op>> { return absl::DataLossError("bad"); },
      huge, &ws4);
  EXPECT_TRUE(absl::IsDataLoss(failed.status())) << failed.status();
  EXPECT_EQ(leader_mem.bytes(), now);
  ASSERT_TRUE(leader->Verify().ok()) << leader->Verify();
}

// Physical mode: the leader's ExecuteOnTop answers OOM for the op that does
// not fit and leaves it out of the write set; a follower applying the write
// set and a logical replica applying the ops end byte-identical.
TEST(KvStoreOomTest, ExecuteOnTopLeavesTheOomOpOutOfTheWriteSet) {
  SimMemory leader_mem(256 << 10), follower_mem(256 << 10), logical_mem(256 << 10);
  auto leader = OpenSim(leader_mem);
  auto follower = OpenSim(follower_mem);
  auto logical = OpenSim(logical_mem);
  ASSERT_TRUE(leader && follower && logical);
  const uint64_t seed = 31337;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  std::mt19937_64 rng(seed);
  const testing::RandomOpOptions gen = Filling(200, 800, 8000, 8);
  uint64_t oom = 0;
  for (uint64_t i = 1; i <= 300; ++i) {
    // The first batches nearly fill the arena with 8 KiB blocks.
    const std::vector<Op> ops = i <= 28 ? std::vector<Op>{Set(absl::StrCat("fill", i),
                                                              std::string(5000, 'f'))}
                                        : testing::RandomBatch(rng, gen);
    WriteSet ws;
    auto built = leader->ExecuteOnTop(i, {}, ops, &ws);
    ASSERT_TRUE(built.ok()) << "index " << i << ": " << built.status();
    for (const OpResult& r : *built) oom += IsOom(r) ? 1 : 0;
    ASSERT_TRUE(leader->ApplyEntryWriteSet(i, ws, ops.size()).ok());
    ASSERT_TRUE(follower->ApplyEntryWriteSet(i, ws, ops.size()).ok());
    auto applied = logical->ApplyBatch(i, ops);
    ASSERT_TRUE(applied.ok());
    ASSERT_EQ(*applied, *built) << "index " << i;
    ASSERT_TRUE(leader_mem.bytes() == follower_mem.bytes()) << "index " << i;
    ASSERT_TRUE(leader_mem.bytes() == logical_mem.bytes()) << "index " << i;
  }
  EXPECT_GT(oom, 20u);
  EXPECT_EQ(leader->Stats().ops_out_of_memory, oom);
  ASSERT_TRUE(follower->Verify().ok()) << follower->Verify();
  EXPECT_EQ(follower->Memory().used_bytes, logical->Memory().used_bytes);
}

// Crash at every store (and mid-store) of random batches on a small arena
// where many ops run out of memory, the savepoint rollbacks' own stores
// included: the recovered bytes are exactly those before or after the batch.
TEST(KvStoreOomCrashTest, EveryStoreOfAnOomBatchRecoversBeforeOrAfter) {
  const uint64_t seed = 0x00c5;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  constexpr uint64_t kArenaBytes = 128 << 10;
  SimMemory mem(kArenaBytes);
  auto store = OpenSim(mem);
  ASSERT_NE(store, nullptr);
  testing::Model model;
  std::mt19937_64 rng(seed);
  const testing::RandomOpOptions gen = Filling(120, 400, 3000, 4);
  uint64_t points = 0, oom = 0, oom_batches = 0;
  for (uint64_t i = 1; i <= 600; ++i) {
    // The first batches fill most of the arena with 8 KiB blocks.
    const std::vector<Op> ops = i <= 13 ? std::vector<Op>{Set(absl::StrCat("fill", i),
                                                              std::string(5000, 'f'))}
                                        : testing::RandomBatch(rng, gen);
    const std::vector<uint8_t> before = mem.bytes();
    absl::StatusOr<std::vector<OpResult>> r;
    const std::vector<std::vector<uint8_t>> images =
        testing::CrashImages(mem, [&] { r = store->ApplyBatch(i, ops); }, &points);
    ASSERT_TRUE(r.ok()) << r.status();
    std::vector<Op> kept;
    std::vector<OpResult> kept_results;
    WithoutOom(ops, *r, &kept, &kept_results);
    oom += ops.size() - kept.size();
    oom_batches += kept.size() < ops.size() ? 1 : 0;
    ASSERT_EQ(model.Apply(kept), kept_results) << "index " << i;
    for (const auto& image : images) {
      ASSERT_TRUE(image == mem.bytes()) << "index " << i << ": a crash image is neither state";
    }
    if (kept.size() < ops.size() || i % 50 == 0) {
      ASSERT_TRUE(store->Verify().ok()) << store->Verify();
      ASSERT_EQ(testing::Dump(*store), model.Dump()) << "index " << i;
    }
  }
  EXPECT_GT(oom_batches, 30u);
  EXPECT_GT(points, 20000u);  // 25,379 at seed 197 (one snapshot per line and transaction).
  std::printf("oom crash test: %lu crash points, %lu ops out of memory\n",
              static_cast<unsigned long>(points), static_cast<unsigned long>(oom));
}

}  // namespace
}  // namespace blizzard::structures
