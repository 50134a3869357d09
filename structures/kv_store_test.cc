#include "structures/kv_store.h"

#include <libpmemobj.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "structures/arena_testing.h"
#include "structures/pmem_arena.h"
#include "structures/sim_memory.h"
#include "structures/test_util.h"

namespace blizzard::structures {
namespace {

using ::testing::HasSubstr;
using Kind = OpResult::Kind;

constexpr char kNotInteger[] = "ERR value is not an integer or out of range";
constexpr char kOverflow[] = "ERR increment or decrement would overflow";

Op Set(std::string k, std::string v) { return Op{OpCode::kSet, {std::move(k), std::move(v)}, 0, {}}; }
Op Del(std::vector<std::string> keys) { return Op{OpCode::kDel, std::move(keys), 0, {}}; }
Op IncrBy(std::string k, int64_t d) { return Op{OpCode::kIncrBy, {std::move(k)}, d, {}}; }
Op Append(std::string k, std::string v) {
  return Op{OpCode::kAppend, {std::move(k), std::move(v)}, 0, {}};
}
Op MSet(std::vector<std::string> kv) { return Op{OpCode::kMSet, std::move(kv), 0, {}}; }

OpResult Ok() { return OpResult{}; }
OpResult Int(int64_t n) { return OpResult{Kind::kInteger, n, "", {}}; }
OpResult Err(const char* text) { return OpResult{Kind::kError, 0, text, {}}; }

using testing::ReadFile;
using testing::WriteFile;

class KvStoreTest : public ::testing::Test {
 protected:
  KvStoreTest()
      : dir_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {
    options_.path = dir_.Path("kv.pool");
    options_.pool_bytes = 32ull << 20;
    options_.cluster_id = 7;
    options_.node_id = 2;
  }

  std::unique_ptr<KvStore> OpenOrDie() {
    auto s = KvStore::Open(options_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Applies `ops` as the next index and returns the results.
  std::vector<OpResult> Apply(KvStore& store, std::vector<Op> ops) {
    auto r = store.ApplyBatch(store.AppliedIndex() + 1, ops);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<OpResult>{};
  }

  testing::ScratchDir dir_;
  StoreOptions options_;
};

// Expected replies are Redis's, from its command documentation
// (redis.io/commands/{set,del,incrby,append,mset}) and t_string.c.
TEST_F(KvStoreTest, SemanticsMatchRedisDocumentation) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  // SET mykey "Hello" -> OK; GET mykey -> "Hello".
  EXPECT_EQ(Apply(*store, {Set("mykey", "Hello")}), std::vector{Ok()});
  EXPECT_EQ(store->Get("mykey"), "Hello");
  // APPEND: EXISTS mykey -> 0; APPEND mykey "Hello" -> 5;
  // APPEND mykey " World" -> 11; GET -> "Hello World".
  EXPECT_EQ(store->Get("ap"), std::nullopt);
  EXPECT_EQ(Apply(*store, {Append("ap", "Hello"), Append("ap", " World")}),
            (std::vector{Int(5), Int(11)}));
  EXPECT_EQ(store->Get("ap"), "Hello World");
  // INCRBY: SET mykey "10"; INCRBY mykey 5 -> 15.
  EXPECT_EQ(Apply(*store, {Set("n", "10"), IncrBy("n", 5)}), (std::vector{Ok(), Int(15)}));
  EXPECT_EQ(store->Get("n"), "15");
  // DEL: SET key1 "Hello"; SET key2 "World"; DEL key1 key2 key3 -> 2.
  EXPECT_EQ(Apply(*store, {Set("key1", "Hello"), Set("key2", "World"),
                           Del({"key1", "key2", "key3"})}),
            (std::vector{Ok(), Ok(), Int(2)}));
  EXPECT_EQ(store->Get("key1"), std::nullopt);
  // MSET key1 "Hello" key2 "World" -> OK; GET key1 -> "Hello".
  EXPECT_EQ(Apply(*store, {MSet({"key1", "Hello", "key2", "World"})}), std::vector{Ok()});
  EXPECT_EQ(store->Get("key1"), "Hello");
  EXPECT_EQ(store->Get("key2"), "World");
  // SET overwrites.
  Apply(*store, {Set("mykey", "x")});
  EXPECT_EQ(store->Get("mykey"), "x");
  EXPECT_TRUE(store->Verify().ok()) << store->Verify();
}

TEST_F(KvStoreTest, IncrByFollowsRedis) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  // A missing key counts as 0; the result is stored as its decimal string.
  EXPECT_EQ(Apply(*store, {IncrBy("a", -5)}), std::vector{Int(-5)});
  EXPECT_EQ(store->Get("a"), "-5");
  EXPECT_EQ(Apply(*store, {IncrBy("a", 0)}), std::vector{Int(-5)});
  // Only the canonical decimal form of an int64 is an integer (string2ll).
  for (const char* bad : {"", "abc", " 1", "1 ", "+1", "01", "-0", "1.5", "0x10", "--1",
                          "9223372036854775808", "-9223372036854775809",
                          "99999999999999999999"}) {
    Apply(*store, {Set("b", bad)});
    EXPECT_EQ(Apply(*store, {IncrBy("b", 1)}), std::vector{Err(kNotInteger)}) << bad;
    EXPECT_EQ(store->Get("b"), bad) << "a failed INCRBY changes nothing";
  }
  Apply(*store, {Set("b", std::string("1\0", 2))});
  EXPECT_EQ(Apply(*store, {IncrBy("b", 1)}), std::vector{Err(kNotInteger)});
  Apply(*store, {Set("c", "0")});
  EXPECT_EQ(Apply(*store, {IncrBy("c", 1)}), std::vector{Int(1)});
  // The int64 edges: reaching them is fine, passing them overflows.
  Apply(*store, {Set("max", "9223372036854775806"), Set("min", "-9223372036854775807")});
  EXPECT_EQ(Apply(*store, {IncrBy("max", 1)}),
            std::vector{Int(std::numeric_limits<int64_t>::max())});
  EXPECT_EQ(Apply(*store, {IncrBy("max", 1)}), std::vector{Err(kOverflow)});
  EXPECT_EQ(store->Get("max"), "9223372036854775807");
  EXPECT_EQ(Apply(*store, {IncrBy("min", -1)}),
            std::vector{Int(std::numeric_limits<int64_t>::min())});
  EXPECT_EQ(store->Get("min"), "-9223372036854775808");
  EXPECT_EQ(Apply(*store, {IncrBy("min", -1)}), std::vector{Err(kOverflow)});
  EXPECT_EQ(Apply(*store, {IncrBy("min", std::numeric_limits<int64_t>::max())}),
            std::vector{Int(-1)});
  EXPECT_EQ(Apply(*store, {IncrBy("fresh", std::numeric_limits<int64_t>::min())}),
            std::vector{Int(std::numeric_limits<int64_t>::min())});
  // An error inside a batch fails only its op; the rest applies.
  EXPECT_EQ(Apply(*store, {Set("s", "str"), IncrBy("s", 1), Set("t", "1"), IncrBy("t", 1)}),
            (std::vector{Ok(), Err(kNotInteger), Ok(), Int(2)}));
  EXPECT_TRUE(store->Verify().ok()) << store->Verify();
}

TEST_F(KvStoreTest, DelAppendMSetCornerCases) {
  options_.pool_bytes = 96ull << 20;  // A 16 MiB value and its undo log.
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  // DEL counts a key once even if named twice.
  EXPECT_EQ(Apply(*store, {Set("k", "v"), Del({"k", "k"}), Del({"k"})}),
            (std::vector{Ok(), Int(1), Int(0)}));
  // MSET with a repeated key: the last value wins.
  Apply(*store, {MSet({"d", "1", "d", "2"})});
  EXPECT_EQ(store->Get("d"), "2");
  // APPEND to a missing key with an empty string creates it.
  EXPECT_EQ(Apply(*store, {Append("e", "")}), std::vector{Int(0)});
  EXPECT_EQ(store->Get("e"), "");
  EXPECT_EQ(store->Size(), 2u);
  // APPEND onto an INCRBY result, then INCRBY again.
  Apply(*store, {IncrBy("i", 15)});
  EXPECT_EQ(Apply(*store, {Append("i", "0"), IncrBy("i", 1)}), (std::vector{Int(3), Int(151)}));
  // Binary-safe keys and values; the empty key.
  const std::string bk("a\0b", 3), bv("\0\xff\0", 3);
  Apply(*store, {Set(bk, bv), Set("", "empty key")});
  EXPECT_EQ(store->Get(bk), bv);
  EXPECT_EQ(store->Get(std::string("a")), std::nullopt);
  EXPECT_EQ(store->Get(""), "empty key");
  // A value may not grow past kValueBytesMax (Redis: proto-max-bulk-len).
  Apply(*store, {Set("big", std::string(kValueBytesMax - 1, 'x'))});
  EXPECT_EQ(Apply(*store, {Append("big", "yz")}),
            std::vector{Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")});
  EXPECT_EQ(Apply(*store, {Append("big", "y")}), std::vector{Int(kValueBytesMax)});
  EXPECT_EQ(store->Get("big")->size(), kValueBytesMax);
  EXPECT_TRUE(store->Verify().ok()) << store->Verify();
}

// Values that grow and shrink exercise in-place writes, relocation and
// APPEND's preallocation; the model says what every step must give.
TEST_F(KvStoreTest, ValuesGrowAndShrink) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  testing::Model model;
  std::vector<std::vector<Op>> batches;
  for (size_t n : {1, 100, 5000, 3, 0, 70000, 64, 65}) {
    batches.push_back({Set("v", std::string(n, 'a' + n % 26))});
  }
  for (int i = 0; i < 200; ++i) {
    batches.push_back({Append("log", std::string(1 + i * 37 % 500, 'l')), Append("v", "+")});
  }
  batches.push_back({Set("log", "short")});
  for (auto& ops : batches) {
    const auto want = model.Apply(ops);
    ASSERT_EQ(Apply(*store, ops), want);
  }
  EXPECT_EQ(testing::Contents(*store), model.contents());
  EXPECT_EQ(store->StateHash(), model.StateHash());
  TableShape shape;
  ASSERT_TRUE(store->Verify(&shape).ok()) << store->Verify();
  // Only the two entries and the key map (header, directory, one segment).
  EXPECT_EQ(shape.objects, 5u);
}
TEST_F(KvStoreTest, PersistsAcrossReopen) {
  testing::Model model;
  std::mt19937_64 rng(11);
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    for (uint64_t i = 1; i <= 200; ++i) {
      const auto ops = testing::RandomBatch(rng, {});
      model.Apply(ops);
      ASSERT_TRUE(store->ApplyBatch(i, ops).ok());
    }
    EXPECT_EQ(store->Stats().transactions, 200u);
  }
  options_.create_if_missing = false;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->AppliedIndex(), 200u);
  EXPECT_EQ(store->Size(), model.values().size());
  EXPECT_EQ(store->StateHash(), model.StateHash());
  EXPECT_EQ(testing::Dump(*store), model.Dump());
  EXPECT_EQ(store->Stats().transactions, 0u) << "stats count since open";
  const StoreInfo info = store->Info();
  EXPECT_EQ(info.cluster_id, 7u);
  EXPECT_EQ(info.node_id, 2u);
  EXPECT_EQ(info.layout_version, 3u);
  EXPECT_EQ(info.pool_bytes, options_.pool_bytes);
}

TEST_F(KvStoreTest, AppliedIndexStrictlyIncreases) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->AppliedIndex(), 0u);
  EXPECT_EQ(store->ApplyBatch(0, {}).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store->ApplyBatch(5, std::vector{IncrBy("n", 1)}).ok());
  // Re-applying an index (or an older one) fails and changes nothing.
  auto again = store->ApplyBatch(5, std::vector{IncrBy("n", 1)});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->ApplyBatch(3, std::vector{IncrBy("n", 1)}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Get("n"), "1");
  // An empty batch just advances the index; gaps are allowed.
  auto empty = store->ApplyBatch(9, {});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(store->AppliedIndex(), 9u);
  EXPECT_EQ(store->Stats().transactions, 2u);
  EXPECT_EQ(store->Stats().ops_applied, 1u);
}

TEST_F(KvStoreTest, InvalidOpRejectsWholeBatch) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  const std::vector<Op> ops = {Set("a", "1"), Op{OpCode::kSet, {"only-key"}, 0, {}}};
  auto r = store->ApplyBatch(1, ops);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("op 1"));
  EXPECT_EQ(store->AppliedIndex(), 0u);
  EXPECT_EQ(store->Size(), 0u);
}

// Two pools fed the same batches agree on content and state hash, and the
// state hash is the FORMAT.md definition computed by the model.
TEST_F(KvStoreTest, DeterministicAcrossPools) {
  const uint64_t seed = 0xde7e;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  StoreOptions other = options_;
  other.path = dir_.Path("other.pool");
  auto a = OpenOrDie();
  auto b = KvStore::Open(other);
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(b.ok()) << b.status();
  testing::Model model;
  std::mt19937_64 rng(seed);
  testing::RandomOpOptions gen;
  gen.keys = 2000;
  gen.ops_max = 16;
  for (uint64_t i = 1; i <= 500; ++i) {
    const auto ops = testing::RandomBatch(rng, gen);
    const auto want = model.Apply(ops);
    auto ra = a->ApplyBatch(i, ops);
    auto rb = (*b)->ApplyBatch(i, ops);
    ASSERT_TRUE(ra.ok() && rb.ok()) << "index " << i;
    ASSERT_EQ(*ra, want) << "index " << i;
    ASSERT_EQ(*rb, want) << "index " << i;
    ASSERT_EQ(a->StateHash(), (*b)->StateHash()) << "index " << i;
  }
  EXPECT_EQ(a->StateHash(), model.StateHash());
  EXPECT_EQ(testing::Dump(*a), model.Dump());
  EXPECT_EQ(testing::Dump(**b), model.Dump());
  EXPECT_GT(a->Info().bucket_count, 8u);
  EXPECT_TRUE(a->Verify().ok()) << a->Verify();
  EXPECT_TRUE((*b)->Verify().ok()) << (*b)->Verify();
  // Same state, different histories: the hash depends on content only.
  StoreOptions third = options_;
  third.path = dir_.Path("third.pool");
  auto c = KvStore::Open(third);
  ASSERT_TRUE(c.ok());
  std::vector<Op> load;
  for (const auto& [k, v] : model.values()) {
    switch (v.type) {
      case ValueType::kString:
        load.push_back(Set(k, v.str));
        break;
      case ValueType::kList:  // Built from the back: other positions.
        for (auto it = v.list.rbegin(); it != v.list.rend(); ++it) {
          load.push_back(Op{OpCode::kLPush, {k, *it}, 0, {}});
        }
        break;
      case ValueType::kSet:
        for (const auto& m : v.set) load.push_back(Op{OpCode::kSAdd, {k, m}, 0, {}});
        break;
      case ValueType::kZSet:
        for (const auto& [m, s] : v.zset) load.push_back(Op{OpCode::kZAdd, {k, m}, 0, {s}});
        break;
      default:
        break;
    }
  }
  ASSERT_TRUE((*c)->ApplyBatch(1, load).ok());
  EXPECT_EQ((*c)->StateHash(), a->StateHash());
}

// From a byte-identical initial pool, the same batches give byte-identical
// pool files: nothing depends on addresses, time or randomness.
TEST_F(KvStoreTest, SameInitialPoolSameBytes) {
  options_.pool_bytes = 16ull << 20;
  { ASSERT_NE(OpenOrDie(), nullptr); }
  const std::string copy = dir_.Path("copy.pool");
  WriteFile(copy, ReadFile(options_.path));
  for (const std::string& path : {options_.path, copy}) {
    StoreOptions o = options_;
    o.path = path;
    auto store = KvStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status();
    std::mt19937_64 rng(99);
    testing::RandomOpOptions gen;
    gen.keys = 500;
    for (uint64_t i = 1; i <= 300; ++i) {
      ASSERT_TRUE((*store)->ApplyBatch(i, testing::RandomBatch(rng, gen)).ok());
    }
    EXPECT_GE((*store)->Info().bucket_count, 512u);
  }
  const std::string x = ReadFile(options_.path), y = ReadFile(copy);
  ASSERT_EQ(x.size(), y.size());
  // Skip the run-time half of libpmemobj's pool descriptor, bytes
  // [6144, 8192) (struct pmemobjpool in PMDK's src/libpmemobj/obj.h): PMDK
  // keeps process-local state there (mapping addresses, function
  // pointers). Every other byte, heap and allocator metadata included, must
  // match.
  constexpr size_t kRuntimeBegin = 6144, kRuntimeEnd = 8192;
  size_t differ = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (i == kRuntimeBegin) i = kRuntimeEnd;
    if (x[i] != y[i] && differ++ < 10) ADD_FAILURE() << "pools differ at byte " << i;
  }
  EXPECT_EQ(differ, 0u);
}

// On a real pool: the op that finds the arena full answers Redis's OOM
// error and leaves no trace, the rest of its batch and the index commit,
// the store verifies and reopens, and deleting makes room again.
// (kv_store_oom_test covers the same on simulated replicas, op by op.)
TEST_F(KvStoreTest, PoolFullFailsOnlyTheOpThatCannotAllocate) {
  options_.pool_bytes = 16ull << 20;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  testing::Model model;
  const std::string value(64 << 10, 'v');
  uint64_t index = 0;
  int key = 0, oom = 0;
  while (oom == 0) {
    // Mixed batches: updates of an existing key (snapshots), new keys
    // (allocations, resizes) and a delete.
    std::vector<Op> ops = {Set("first", absl::StrCat(index)), IncrBy("counter", 1)};
    for (int i = 0; i < 4; ++i) ops.push_back(Set(absl::StrCat("key", key++), value));
    if (index > 3) ops.push_back(Del({absl::StrCat("key", index)}));
    auto r = store->ApplyBatch(++index, ops);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(store->AppliedIndex(), index);
    std::vector<Op> kept;
    for (size_t i = 0; i < ops.size(); ++i) {
      if ((*r)[i] == Err(kOutOfMemoryError)) {
        oom++;
      } else {
        kept.push_back(ops[i]);
      }
    }
    model.Apply(kept);
    ASSERT_LT(index, 1000u) << "the pool never filled";
  }
  EXPECT_EQ(store->Stats().ops_out_of_memory, static_cast<uint64_t>(oom));
  EXPECT_EQ(store->StateHash(), model.StateHash());
  EXPECT_EQ(testing::Contents(*store), model.contents());
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();
  // Freeing space lets the same writes through.
  std::vector<std::string> keys;
  for (int i = 0; i < key / 2; ++i) keys.push_back(absl::StrCat("key", i));
  const std::vector<Op> del = {Del(keys)};
  model.Apply(del);
  ASSERT_TRUE(store->ApplyBatch(++index, del).ok());
  const std::vector<Op> again = {Set("again", value), Set("again2", value)};
  EXPECT_EQ(Apply(*store, again), (std::vector<OpResult>{Ok(), Ok()}));
  model.Apply(again);
  EXPECT_EQ(testing::Contents(*store), model.contents());
  store.reset();
  store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->StateHash(), model.StateHash());
}

// Regression: within one op a value shrinks in place and then grows in
// place again, into bytes that were live when the transaction began. The
// op's rollback (here: the pool cannot hold the op's last value) must
// restore them; crash recovery replays the same undo log.
TEST_F(KvStoreTest, AbortRestoresValueShrunkThenGrownInPlace) {
  options_.pool_bytes = 16ull << 20;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  const std::string original(200, 'a');
  Apply(*store, {Set("k", original)});
  const uint64_t hash = store->StateHash();
  auto r = store->ApplyBatch(2, std::vector{MSet({"k", std::string(150, 'b'), "k",
                                                  std::string(190, 'c'), "huge",
                                                  std::string(kValueBytesMax, 'h')})});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, std::vector{Err(kOutOfMemoryError)});
  EXPECT_EQ(store->AppliedIndex(), 2u);
  EXPECT_EQ(store->Get("k"), original);
  EXPECT_EQ(store->StateHash(), hash);
  EXPECT_TRUE(store->Verify().ok()) << store->Verify();
}

TEST_F(KvStoreTest, RejectsBadOptions) {
  StoreOptions o = options_;
  o.path = "";
  EXPECT_EQ(KvStore::Open(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = options_;
  o.pool_bytes = 1 << 20;
  EXPECT_EQ(KvStore::Open(o).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(access(options_.path.c_str(), F_OK), 0) << "no file left behind";
}

TEST_F(KvStoreTest, MissingPool) {
  options_.create_if_missing = false;
  auto s = KvStore::Open(options_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound) << s.status();
}

TEST_F(KvStoreTest, StaleCreationFileIsReplaced) {
  WriteFile(options_.path + ".creating", "half-created");
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_NE(access((options_.path + ".creating").c_str(), F_OK), 0);
}

TEST_F(KvStoreTest, OtherClusterOrNodeIsForeign) {
  { ASSERT_NE(OpenOrDie(), nullptr); }
  StoreOptions o = options_;
  o.cluster_id = 8;
  auto s = KvStore::Open(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("belongs to cluster 7 node 2"));
  o = options_;
  o.node_id = 3;
  EXPECT_EQ(KvStore::Open(o).status().code(), absl::StatusCode::kFailedPrecondition);
  o.check_identity = false;
  EXPECT_TRUE(KvStore::Open(o).ok());
}

// A snapshot of another replica's pool (node/SNAPSHOT.md) is adopted: its
// node id is re-stamped, durably; another cluster's pool still is not.
TEST_F(KvStoreTest, AdoptNodeIdRestampsAPoolOfThisCluster) {
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->ApplyBatch(1, {Op{OpCode::kSet, {"k", "v"}}}).ok());
  }
  StoreOptions o = options_;
  o.node_id = 3;
  o.adopt_node_id = true;
  {
    auto s = KvStore::Open(o);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ((*s)->Info().node_id, 3u);
    EXPECT_EQ((*s)->Get("k"), "v");
    EXPECT_EQ((*s)->AppliedIndex(), 1u);
  }
  o.adopt_node_id = false;
  EXPECT_TRUE(KvStore::Open(o).ok());  // Now it is node 3's pool.
  EXPECT_EQ(KvStore::Open(options_).status().code(), absl::StatusCode::kFailedPrecondition);
  o.cluster_id = 8;
  o.adopt_node_id = true;
  EXPECT_EQ(KvStore::Open(o).status().code(), absl::StatusCode::kFailedPrecondition);
}

// The epilogue's ops land in the same transaction as the batch, after it,
// and see its results; an invalid epilogue op applies nothing.
TEST_F(KvStoreTest, EpilogueRunsInTheSameTransaction) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  auto r = store->ApplyBatch(1, {Op{OpCode::kIncrBy, {"n"}, 5}},
                             [](absl::Span<const OpResult> results) {
                               return std::vector<Op>{
                                   Op{OpCode::kSet, {"seen", std::to_string(results[0].integer)}}};
                             });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(store->Get("seen"), "5");
  EXPECT_EQ(store->AppliedIndex(), 1u);
  const uint64_t hash = store->StateHash();
  auto bad = store->ApplyBatch(2, {Op{OpCode::kIncrBy, {"n"}, 1}}, [](absl::Span<const OpResult>) {
    return std::vector<Op>{Op{OpCode::kSet, {"only-a-key"}}};
  });
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->AppliedIndex(), 1u);
  EXPECT_EQ(store->StateHash(), hash);
  EXPECT_EQ(store->Get("n"), "5");
}

TEST_F(KvStoreTest, PoolInUse) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  auto second = KvStore::Open(options_);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
}

TEST_F(KvStoreTest, ForeignFiles) {
  // Not a pool at all.
  WriteFile(options_.path, std::string(PMEMOBJ_MIN_POOL, 'x'));
  auto s = KvStore::Open(options_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("not a Blizzard arena pool"));
  // A pmemobj pool of another layout.
  unlink(options_.path.c_str());
  PMEMobjpool* pop = pmemobj_create(options_.path.c_str(), "other", PMEMOBJ_MIN_POOL, 0600);
  ASSERT_NE(pop, nullptr);
  pmemobj_close(pop);
  s = KvStore::Open(options_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("wrong layout"));
  // Our layout name but never initialized (no root object).
  unlink(options_.path.c_str());
  pop = pmemobj_create(options_.path.c_str(), "blizzard.arena", PMEMOBJ_MIN_POOL, 0600);
  ASSERT_NE(pop, nullptr);
  pmemobj_close(pop);
  s = KvStore::Open(options_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("no Blizzard header"));
  // A truncated pool.
  unlink(options_.path.c_str());
  { ASSERT_NE(OpenOrDie(), nullptr); }
  ASSERT_EQ(truncate(options_.path.c_str(), 4096), 0);
  s = KvStore::Open(options_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
}

Op Typed(OpCode code, std::vector<std::string> args, int64_t count = 0,
         std::vector<double> scores = {}) {
  return Op{code, std::move(args), count, std::move(scores)};
}
OpResult Nil() { return OpResult{Kind::kNil, 0, "", {}}; }
OpResult NilArray() { return OpResult{Kind::kNilArray, 0, "", {}}; }
OpResult Bulk(std::string s) { return OpResult{Kind::kBulk, 0, std::move(s), {}}; }
OpResult Array(std::vector<std::string> items) {
  return OpResult{Kind::kArray, 0, "", std::move(items)};
}
constexpr char kWrongType[] = "WRONGTYPE Operation against a key holding the wrong kind of value";

// The examples of redis.io's LPUSH/RPUSH/LPOP/RPOP/LRANGE/LINDEX pages.
TEST_F(KvStoreTest, ListsFollowRedis) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Apply(*store, {Typed(OpCode::kRPush, {"mylist", "one", "two", "three", "four", "five"}),
                           Typed(OpCode::kLPop, {"mylist"}, kNoCount),
                           Typed(OpCode::kLPop, {"mylist"}, 2), Typed(OpCode::kRPop, {"mylist"}, kNoCount),
                           Typed(OpCode::kLPush, {"l2", "world"}), Typed(OpCode::kLPush, {"l2", "hello"}),
                           Typed(OpCode::kLPop, {"none"}, kNoCount), Typed(OpCode::kLPop, {"none"}, 3),
                           Typed(OpCode::kRPop, {"mylist"}, 0)}),
            (std::vector<OpResult>{Int(5), Bulk("one"), Array({"two", "three"}), Bulk("five"),
                                   Int(1), Int(2), Nil(), NilArray(), Array({})}));
  EXPECT_EQ(store->ListRange("mylist", 0, -1), std::vector<std::string>{"four"});
  EXPECT_EQ(store->ListRange("l2", 0, -1), (std::vector<std::string>{"hello", "world"}));
  Apply(*store, {Typed(OpCode::kRPush, {"l3", "one", "two", "three"})});
  EXPECT_EQ(store->ListRange("l3", 0, 0), std::vector<std::string>{"one"});
  EXPECT_EQ(store->ListRange("l3", -3, 2), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(store->ListRange("l3", -100, 100), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_TRUE(store->ListRange("l3", 5, 10).empty());
  EXPECT_TRUE(store->ListRange("l3", 2, 1).empty());
  EXPECT_EQ(store->ListIndex("l3", 0), "one");
  EXPECT_EQ(store->ListIndex("l3", -1), "three");
  EXPECT_EQ(store->ListIndex("l3", 3), std::nullopt);
  EXPECT_EQ(store->ListLength("l3"), 3u);
  // Popping the last element deletes the key.
  Apply(*store, {Typed(OpCode::kRPop, {"mylist"}, kNoCount)});
  EXPECT_EQ(store->Type("mylist"), ValueType::kNone);
  EXPECT_EQ(store->Size(), 2u);
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();
}

TEST_F(KvStoreTest, SetsAndSortedSetsFollowRedis) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Apply(*store, {Typed(OpCode::kSAdd, {"myset", "Hello"}),
                           Typed(OpCode::kSAdd, {"myset", "World"}),
                           Typed(OpCode::kSAdd, {"myset", "World"}),
                           Typed(OpCode::kSRem, {"myset", "Hello", "nope"}),
                           Typed(OpCode::kSRem, {"none", "x"})}),
            (std::vector<OpResult>{Int(1), Int(1), Int(0), Int(1), Int(0)}));
  EXPECT_EQ(store->SetMembers("myset"), std::vector<std::string>{"World"});
  EXPECT_TRUE(store->SetIsMember("myset", "World"));
  EXPECT_FALSE(store->SetIsMember("myset", "Hello"));
  EXPECT_EQ(store->SetCard("myset"), 1u);
  EXPECT_EQ(Apply(*store, {Typed(OpCode::kZAdd, {"myzset", "one"}, 0, {1}),
                           Typed(OpCode::kZAdd, {"myzset", "uno"}, 0, {1}),
                           Typed(OpCode::kZAdd, {"myzset", "two", "three"}, 0, {2, 3}),
                           Typed(OpCode::kZAdd, {"myzset", "two"}, 0, {2.5}),
                           Typed(OpCode::kZRem, {"myzset", "uno", "x"})}),
            (std::vector<OpResult>{Int(1), Int(1), Int(2), Int(0), Int(1)}));
  using Pairs = std::vector<std::pair<std::string, double>>;
  EXPECT_EQ(store->ZRange("myzset", 0, -1), (Pairs{{"one", 1}, {"two", 2.5}, {"three", 3}}));
  EXPECT_EQ(store->ZRange("myzset", 2, 3), (Pairs{{"three", 3}}));
  EXPECT_EQ(store->ZRange("myzset", -2, -1), (Pairs{{"two", 2.5}, {"three", 3}}));
  EXPECT_EQ(store->ZScore("myzset", "two"), 2.5);
  EXPECT_EQ(store->ZScore("myzset", "uno"), std::nullopt);
  EXPECT_EQ(store->ZCard("myzset"), 3u);
  const double inf = HUGE_VAL;
  EXPECT_EQ(store->ZRangeByScore("myzset", {-inf, false}, {inf, false}, 0, -1),
            (Pairs{{"one", 1}, {"two", 2.5}, {"three", 3}}));
  EXPECT_EQ(store->ZRangeByScore("myzset", {1, false}, {2.5, false}, 0, -1),
            (Pairs{{"one", 1}, {"two", 2.5}}));
  EXPECT_EQ(store->ZRangeByScore("myzset", {1, true}, {2.5, false}, 0, -1), (Pairs{{"two", 2.5}}));
  EXPECT_EQ(store->ZRangeByScore("myzset", {1, true}, {2.5, true}, 0, -1), Pairs{});
  EXPECT_EQ(store->ZRangeByScore("myzset", {-inf, false}, {inf, false}, 1, 1),
            (Pairs{{"two", 2.5}}));
  EXPECT_EQ(Apply(*store, {Typed(OpCode::kZPopMin, {"myzset"}, kNoCount),
                           Typed(OpCode::kZPopMax, {"myzset"}, 5),
                           Typed(OpCode::kZPopMin, {"myzset"}, kNoCount)}),
            (std::vector<OpResult>{Array({"one", "1"}), Array({"three", "3", "two", "2.5"}),
                                   Array({})}));
  EXPECT_EQ(store->Type("myzset"), ValueType::kNone);
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();
}

TEST_F(KvStoreTest, WrongTypeAndTypeChanges) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  Apply(*store, {Set("s", "v"), Typed(OpCode::kRPush, {"l", "a"}), Typed(OpCode::kSAdd, {"S", "m"}),
                 Typed(OpCode::kZAdd, {"z", "m"}, 0, {1})});
  EXPECT_EQ(store->Type("s"), ValueType::kString);
  EXPECT_EQ(store->Type("l"), ValueType::kList);
  EXPECT_EQ(store->Type("S"), ValueType::kSet);
  EXPECT_EQ(store->Type("z"), ValueType::kZSet);
  EXPECT_STREQ(TypeName(store->Type("z")), "zset");
  EXPECT_STREQ(TypeName(store->Type("nope")), "none");
  EXPECT_EQ(store->Get("l"), std::nullopt);
  EXPECT_EQ(Apply(*store, {Typed(OpCode::kLPush, {"s", "x"}), Typed(OpCode::kSAdd, {"l", "x"}),
                           Typed(OpCode::kZAdd, {"S", "x"}, 0, {1}), IncrBy("z", 1),
                           Append("l", "x"), Typed(OpCode::kLPop, {"z"}, kNoCount),
                           Typed(OpCode::kZPopMin, {"s"}, kNoCount),
                           Typed(OpCode::kSRem, {"z", "m"}), Typed(OpCode::kZRem, {"l", "a"})}),
            std::vector<OpResult>(9, Err(kWrongType)));
  // SET and DEL take any type; the container is freed.
  EXPECT_EQ(Apply(*store, {Set("l", "now a string"), Del({"S", "z", "missing"})}),
            (std::vector<OpResult>{Ok(), Int(2)}));
  EXPECT_EQ(store->Get("l"), "now a string");
  EXPECT_EQ(store->Size(), 2u);
  TableShape shape;
  ASSERT_TRUE(store->Verify(&shape).ok()) << store->Verify();
  EXPECT_EQ(shape.strings, 2u);
  EXPECT_EQ(shape.lists + shape.sets + shape.zsets, 0u);
}

// Random typed and string batches against the model: results, content,
// state hash (the FORMAT.md definition, computed by the model) and a full
// Verify() (every block owned once, digests) along the way.
TEST_F(KvStoreTest, RandomTypedOpsMatchModel) {
  const uint64_t seed = 0x7e57;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  testing::Model model;
  std::mt19937_64 rng(seed);
  testing::RandomOpOptions gen;
  gen.keys = 40;
  gen.big_value_bytes = 2048;
  TableShape seen;  // Containers seen at the checkpoints.
  for (uint64_t i = 1; i <= 1500; ++i) {
    const auto ops = testing::RandomBatch(rng, gen);
    const auto want = model.Apply(ops);
    auto got = store->ApplyBatch(i, ops);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(*got, want) << "index " << i;
    ASSERT_EQ(store->StateHash(), model.StateHash()) << "index " << i;
    if (i % 100 == 0) {
      ASSERT_EQ(testing::Dump(*store), model.Dump()) << "index " << i;
      TableShape shape;
      ASSERT_TRUE(store->Verify(&shape).ok()) << store->Verify() << " index " << i;
      seen.lists += shape.lists;
      seen.sets += shape.sets;
      seen.zsets += shape.zsets;
    }
  }
  EXPECT_GT(seen.lists, 0u);
  EXPECT_GT(seen.sets, 0u);
  EXPECT_GT(seen.zsets, 0u);
}

// Physical replication end to end on real pools: a follower that applies
// the leader's encoded write sets has a byte-identical arena and the same
// state hash; undoing a speculative write set on the leader restores it.
TEST_F(KvStoreTest, WriteSetsReplicateByteIdentically) {
  const uint64_t seed = 0x9a1;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  options_.pool_bytes = 24ull << 20;
  auto leader = OpenOrDie();
  StoreOptions fo = options_;
  fo.path = dir_.Path("follower.pool");
  auto follower = KvStore::Open(fo);
  ASSERT_NE(leader, nullptr);
  ASSERT_TRUE(follower.ok()) << follower.status();
  std::mt19937_64 rng(seed);
  testing::RandomOpOptions gen;
  gen.keys = 60;
  uint64_t bytes = 0, ops_total = 0;
  for (uint64_t i = 1; i <= 400; ++i) {
    const auto ops = testing::RandomBatch(rng, gen);
    const uint64_t hash_before = leader->StateHash();
    WriteSet ws;
    ASSERT_TRUE(leader->ApplyBatch(i, ops, &ws).ok());
    if (i % 9 == 0) {  // Never committed: the leader undoes it.
      ASSERT_TRUE(leader->UndoWriteSet(ws).ok());
      ASSERT_EQ(leader->AppliedIndex(), i - 1);
      ASSERT_EQ(leader->StateHash(), hash_before);
      ASSERT_TRUE(leader->ApplyBatch(i, ops, &ws).ok());
    }
    const std::string wire = EncodeWriteSet(ws);
    bytes += wire.size();
    ops_total += ops.size();
    auto decoded = DecodeWriteSet(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(wire.data()), wire.size()),
        (*follower)->ArenaBytes());
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_TRUE((*follower)->ApplyWriteSet(*decoded).ok());
    ASSERT_EQ((*follower)->AppliedIndex(), i);
    ASSERT_EQ((*follower)->StateHash(), leader->StateHash()) << "index " << i;
  }
  EXPECT_EQ(testing::Dump(**follower), testing::Dump(*leader));
  ASSERT_TRUE((*follower)->Verify().ok()) << (*follower)->Verify();
  leader.reset();
  follower->reset();
  // Byte-identical arenas (compare through the pool files' arena objects).
  PoolOptions po;
  po.path = options_.path;
  po.cluster_id = 7;
  po.node_id = 2;
  auto a = PmemArenaPool::Open(po);
  po.path = fo.path;
  auto b = PmemArenaPool::Open(po);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ((*a)->size(), (*b)->size());
  const uint64_t used = (*a)->size();
  EXPECT_EQ(std::memcmp((*a)->data(), (*b)->data(), used), 0);
  std::printf("write sets: %.1f bytes per op on the wire (%lu ops)\n",
              static_cast<double>(bytes) / static_cast<double>(ops_total),
              static_cast<unsigned long>(ops_total));
}

// Physical leader: entries executed on top of up to 5 unapplied ones
// (some without ops) give the same results and, applied in order with
// ApplyEntryWriteSet, the same bytes as a replica applying the batches;
// the executing store is never changed.
TEST(KvStoreExecuteOnTopTest, InFlightChainsMatchDirectApplication) {
  const uint64_t seed = 0x6e7;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  constexpr uint64_t kBytes = 4u << 20;
  SimMemory lm(kBytes), rm(kBytes);
  auto leader = KvStore::OpenMemory(&lm);
  auto replica = KvStore::OpenMemory(&rm);
  ASSERT_TRUE(leader.ok() && replica.ok());
  std::mt19937_64 rng(seed);
  testing::RandomOpOptions gen;
  gen.keys = 40;
  gen.big_value_bytes = 600;
  std::vector<WriteSet> built;  // Entry i at built[i - 1]; empty ranges: no ops.
  std::vector<bool> has_ops;
  // Applies the built entries up to `commit` on the leader.
  auto commit_to = [&](uint64_t commit) {
    for (uint64_t j = (*leader)->AppliedIndex() + 1; j <= commit; ++j) {
      if (has_ops[j - 1]) {
        ASSERT_TRUE((*leader)->ApplyEntryWriteSet(j, built[j - 1], 1).ok());
      } else {
        ASSERT_TRUE((*leader)->ApplyBatch(j, {}).ok());
      }
    }
  };
  uint64_t index = 0;
  for (int round = 0; round < 150; ++round) {
    // Build 0..5 entries, then commit a random prefix of what is in flight.
    const int n = static_cast<int>(rng() % 6);
    for (int k = 0; k < n; ++k) {
      ++index;
      const bool noop = rng() % 7 == 0;
      std::vector<KvStore::UnappliedEntry> chain;
      for (uint64_t j = (*leader)->AppliedIndex() + 1; j < index; ++j) {
        chain.push_back({j, has_ops[j - 1] ? &built[j - 1] : nullptr});
      }
      const uint64_t hash = (*leader)->StateHash();
      const std::vector<uint8_t> bytes_before = lm.bytes();
      if (noop) {
        built.emplace_back();
        has_ops.push_back(false);
        auto r = (*replica)->ApplyBatch(index, {});
        ASSERT_TRUE(r.ok()) << r.status();
        continue;
      }
      const auto ops = testing::RandomBatch(rng, gen);
      WriteSet ws;
      auto results = (*leader)->ExecuteOnTop(index, chain, ops, &ws);
      ASSERT_TRUE(results.ok()) << results.status();
      ASSERT_EQ(lm.bytes(), bytes_before) << "the leader's store changed";
      ASSERT_EQ((*leader)->StateHash(), hash);
      auto direct = (*replica)->ApplyBatch(index, ops);
      ASSERT_TRUE(direct.ok()) << direct.status();
      ASSERT_EQ(*results, *direct) << "index " << index;
      built.push_back(std::move(ws));
      has_ops.push_back(true);
    }
    const uint64_t applied = (*leader)->AppliedIndex();
    commit_to(applied + (index > applied ? rng() % (index - applied + 1) : 0));
  }
  commit_to(index);
  EXPECT_EQ(lm.bytes(), rm.bytes());
  EXPECT_TRUE((*leader)->Verify().ok()) << (*leader)->Verify();

  // A chain that does not start after the applied index, or skips one.
  WriteSet ws;
  std::vector<KvStore::UnappliedEntry> gap = {{index + 2, nullptr}};
  EXPECT_TRUE(absl::IsFailedPrecondition(
      (*leader)->ExecuteOnTop(index + 3, gap, {}, &ws).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition((*leader)->ExecuteOnTop(index + 2, {}, {}, &ws).status()));
  // A write set that leaves another applied index, or none at all, is
  // refused and changes nothing.
  ASSERT_TRUE((*leader)->ExecuteOnTop(index + 1, {}, {}, &ws).ok());
  const std::vector<uint8_t> before = lm.bytes();
  EXPECT_TRUE(absl::IsDataLoss((*leader)->ApplyEntryWriteSet(index + 2, ws, 0)));
  WriteSet empty;
  empty.arena_bytes = kBytes;
  EXPECT_TRUE(absl::IsDataLoss((*leader)->ApplyEntryWriteSet(index + 1, empty, 0)));
  WriteSet foreign = ws;
  foreign.arena_bytes = kBytes * 2;
  EXPECT_TRUE(absl::IsDataLoss((*leader)->ApplyEntryWriteSet(index + 1, foreign, 0)));
  EXPECT_EQ(lm.bytes(), before);
  EXPECT_TRUE((*leader)->ApplyEntryWriteSet(index + 1, ws, 0).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition((*leader)->ApplyEntryWriteSet(index + 1, ws, 0)));
}

// Crash at every store of the physical paths: during ExecuteOnTop (the
// leader's speculative transaction) recovery always gives the committed
// state; during ApplyEntryWriteSet, the state before or after the entry.
TEST(KvStoreExecuteOnTopTest, CrashAtEveryStore) {
  const uint64_t seed = 0xc4a5;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  constexpr uint64_t kBytes = 512u << 10;
  SimMemory mem(kBytes);
  auto store = KvStore::OpenMemory(&mem);
  ASSERT_TRUE(store.ok());
  std::mt19937_64 rng(seed);
  testing::RandomOpOptions gen;
  gen.keys = 20;
  gen.big_value_bytes = 300;
  uint64_t points = 0;
  std::vector<WriteSet> in_flight;
  for (uint64_t index = 1; index <= 60; ++index) {
    std::vector<KvStore::UnappliedEntry> chain;
    const uint64_t applied = (*store)->AppliedIndex();
    for (uint64_t j = applied + 1; j < index; ++j) {
      chain.push_back({j, &in_flight[j - applied - 1]});
    }
    const std::vector<uint8_t> before = mem.bytes();
    WriteSet ws;
    absl::StatusOr<std::vector<OpResult>> r;
    const auto ops = testing::RandomBatch(rng, gen);
    const auto images = testing::CrashImages(
        mem, [&] { r = (*store)->ExecuteOnTop(index, chain, ops, &ws); }, &points);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(images.empty()) << "index " << index
                                << ": a crash in ExecuteOnTop left other bytes";
    ASSERT_EQ(mem.bytes(), before);
    in_flight.push_back(std::move(ws));
    if (rng() % 3 != 0) continue;
    // Commit everything in flight, crashing at every store.
    for (WriteSet& w : in_flight) {
      const uint64_t i = (*store)->AppliedIndex() + 1;
      absl::Status applied;
      const auto images = testing::CrashImages(
          mem, [&] { applied = (*store)->ApplyEntryWriteSet(i, w, 1); }, &points);
      ASSERT_TRUE(applied.ok()) << applied;
      for (const auto& image : images) ASSERT_TRUE(image == mem.bytes()) << "entry " << i;
    }
    in_flight.clear();
  }
  EXPECT_GT(points, 1000u);
  ASSERT_TRUE((*store)->Verify().ok()) << (*store)->Verify();
}

// Damage anywhere in the keyspace is caught by Verify() on open.
TEST_F(KvStoreTest, DamageIsCaughtOnOpen) {
  SimMemory mem(1 << 20);
  std::vector<uint8_t> good;
  std::map<std::string, std::string> good_dump;
  uint64_t good_hash = 0;
  {
    auto store = KvStore::OpenMemory(&mem);
    ASSERT_TRUE(store.ok()) << store.status();
    std::mt19937_64 rng(3);
    testing::RandomOpOptions gen;
    gen.keys = 20;
    gen.big_value_bytes = 256;
    for (uint64_t i = 1; i <= 100; ++i) {
      ASSERT_TRUE((*store)->ApplyBatch(i, testing::RandomBatch(rng, gen)).ok());
    }
    good = mem.bytes();
    good_dump = testing::Dump(**store);
    good_hash = (*store)->StateHash();
  }
  const uint64_t heap_end =
      reinterpret_cast<const arena_format::Header*>(good.data())->bump;
  std::mt19937_64 rng(4);
  int caught = 0, tried = 0;
  for (int i = 0; i < 300; ++i) {
    std::vector<uint8_t> bad = good;
    const uint64_t at = arena_format::kRootOffset + rng() % (heap_end - arena_format::kRootOffset);
    bad[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
    SimMemory m(1 << 20);
    m.Reset(bad);
    tried++;
    auto store = KvStore::OpenMemory(&m);
    if (!store.ok()) {
      EXPECT_TRUE(store.status().code() == absl::StatusCode::kDataLoss ||
                  store.status().code() == absl::StatusCode::kFailedPrecondition)
          << store.status();
      caught++;
    } else {
      // Undetected damage must be harmless: a flip in bytes nothing reads
      // (free blocks' payloads, allocation slack).
      ASSERT_EQ(testing::Dump(**store), good_dump) << "undetected flip at " << at;
      ASSERT_EQ((*store)->StateHash(), good_hash) << "undetected flip at " << at;
    }
  }
  EXPECT_GT(caught, tried / 4) << caught << " of " << tried;
}

// The simulated twin: crash at every store (and mid-store) of random typed
// batches; the recovered bytes are exactly those before or after the batch,
// and both of those verify and match the model.
TEST(KeyspaceCrashTest, EveryStoreRecoversBeforeOrAfter) {
  const uint64_t seed = 0xc4a5;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  SimMemory mem(512 << 10);
  auto store = KvStore::OpenMemory(&mem);
  ASSERT_TRUE(store.ok()) << store.status();
  testing::Model model;
  std::mt19937_64 rng(seed);
  testing::RandomOpOptions gen;
  gen.keys = 24;
  gen.big_value_bytes = 512;
  gen.ops_max = 4;
  uint64_t points = 0, after_images = 0;
  for (uint64_t i = 1; i <= 500; ++i) {
    const auto ops = testing::RandomBatch(rng, gen);
    const std::vector<uint8_t> before = mem.bytes();
    absl::StatusOr<std::vector<OpResult>> r;
    const std::vector<std::vector<uint8_t>> images =
        testing::CrashImages(mem, [&] { r = (*store)->ApplyBatch(i, ops); }, &points);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(*r, model.Apply(ops)) << "index " << i;
    for (const auto& image : images) {
      ASSERT_TRUE(image == mem.bytes()) << "index " << i << ": a crash image is neither state";
    }
    after_images += images.size();
    if (i % 25 == 0) {
      ASSERT_TRUE((*store)->Verify().ok()) << (*store)->Verify();
      ASSERT_EQ(testing::Dump(**store), model.Dump());
      // A restart from the image of the last crash point recovers too.
      SimMemory restarted(512 << 10);
      restarted.Reset(images.empty() ? before : images.back());
      auto again = KvStore::OpenMemory(&restarted);
      ASSERT_TRUE(again.ok()) << again.status();
      EXPECT_EQ((*again)->AppliedIndex(), images.empty() ? i - 1 : i);
    }
  }
  EXPECT_GT(points, 20000u);
  // (Every point is before the commit store; recovery then gives the state
  // before the batch. The next batch's first point shows the state after.)
  EXPECT_EQ(after_images, 0u);
  std::printf("keyspace crash test: %lu crash points\n", static_cast<unsigned long>(points));
}

}  // namespace
}  // namespace blizzard::structures
