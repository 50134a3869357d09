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
#include "structures/kv_format.h"
#include "structures/test_util.h"

namespace blizzard::structures {
namespace {

using ::testing::HasSubstr;
using Kind = OpResult::Kind;

constexpr char kNotInteger[] = "ERR value is not an integer or out of range";
constexpr char kOverflow[] = "ERR increment or decrement would overflow";

Op Set(std::string k, std::string v) { return Op{OpCode::kSet, {std::move(k), std::move(v)}, 0}; }
Op Del(std::vector<std::string> keys) { return Op{OpCode::kDel, std::move(keys), 0}; }
Op IncrBy(std::string k, int64_t d) { return Op{OpCode::kIncrBy, {std::move(k)}, d}; }
Op Append(std::string k, std::string v) {
  return Op{OpCode::kAppend, {std::move(k), std::move(v)}, 0};
}
Op MSet(std::vector<std::string> kv) { return Op{OpCode::kMSet, std::move(kv), 0}; }

OpResult Ok() { return OpResult{}; }
OpResult Int(int64_t n) { return OpResult{Kind::kInteger, n, ""}; }
OpResult Err(const char* text) { return OpResult{Kind::kError, 0, text}; }

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

  // Applies empty batches until no resize is in progress; returns how many.
  uint64_t FinishResize(KvStore& store) {
    uint64_t batches = 0;
    for (; store.Info().old_bucket_count != 0 && batches < 1000000; ++batches) Apply(store, {});
    EXPECT_EQ(store.Info().old_bucket_count, 0u);
    return batches;
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
  // Only the two entries and the table (a directory, one segment) remain.
  EXPECT_EQ(shape.objects, 4u);
}

TEST_F(KvStoreTest, TableDoublesAndStaysConsistent) {
  options_.initial_bucket_count = 16;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Info().bucket_count, 16u);
  testing::Model model;
  for (int b = 0; b < 100; ++b) {
    std::vector<Op> ops;
    for (int i = 0; i < 50; ++i) ops.push_back(Set(absl::StrCat("key", b * 50 + i), "v"));
    if (b % 10 == 9) ops.push_back(Del({absl::StrCat("key", b * 10)}));
    model.Apply(ops);
    Apply(*store, ops);
  }
  EXPECT_EQ(store->Size(), model.contents().size());
  EXPECT_GE(store->Info().bucket_count, store->Size());
  EXPECT_EQ(store->Info().bucket_count, 8192u);
  EXPECT_EQ(testing::Contents(*store), model.contents());
  for (const auto& [k, v] : model.contents()) ASSERT_EQ(store->Get(k), v) << k;
  EXPECT_EQ(store->StateHash(), model.StateHash());
  TableShape shape;
  ASSERT_TRUE(store->Verify(&shape).ok()) << store->Verify();
  // Still moving buckets from the 4096-bucket table: both tables exist.
  EXPECT_EQ(store->Info().old_bucket_count, 4096u);
  EXPECT_GT(shape.objects, store->Size() + 2);
  // Batches that insert nothing finish it, 64 old buckets each.
  const uint64_t cursor = store->Info().migrate_cursor;
  EXPECT_EQ(FinishResize(*store), (4096 - cursor + 63) / 64);
  ASSERT_TRUE(store->Verify(&shape).ok()) << store->Verify();
  // The entries, a directory and 8192 / 2048 segments.
  EXPECT_EQ(shape.objects, store->Size() + 5);
  EXPECT_EQ(testing::Contents(*store), model.contents());
  EXPECT_EQ(store->Stats().resizes_started, 9u);  // 16 -> 8192.
}

// The incremental resize against the model: many doublings from a small
// table, random SET/DEL/INCRBY/APPEND/MSET landing on both tables while
// buckets move, and Verify() (every entry reachable once, in the right
// table and bucket for the cursor) after every batch.
TEST_F(KvStoreTest, RandomOpsDuringManyResizes) {
  const uint64_t seed = 0x5e51e;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  options_.initial_bucket_count = 16;
  options_.pool_bytes = 64ull << 20;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  testing::Model model;
  std::mt19937_64 rng(seed);
  testing::RandomOpOptions gen;
  gen.ops_max = 16;
  gen.value_bytes_max = 32;
  gen.big_value_bytes = 512;
  uint64_t batches_mid_resize = 0;
  uint64_t fresh = 0;
  constexpr uint64_t kBatches = 1000;
  for (uint64_t i = 1; i <= kBatches; ++i) {
    SCOPED_TRACE(absl::StrCat("index ", i));
    // Random ops over a growing key space, and in two batches of three a
    // burst of new keys: resizes keep starting, and batches land on both
    // tables while buckets move.
    gen.keys = 16 + i * 4;
    auto ops = testing::RandomBatch(rng, gen);
    if (i % 3 != 0) {
      std::vector<std::string> kv;
      for (uint64_t n = 8 + rng() % 17; n > 0; --n) {
        kv.push_back(absl::StrCat("fresh", fresh++));
        kv.push_back(std::string(rng() % 16, 'f'));
      }
      ops.insert(ops.begin() + static_cast<ptrdiff_t>(rng() % (ops.size() + 1)), MSet(kv));
    }
    const auto want = model.Apply(ops);
    auto got = store->ApplyBatch(i, ops);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(*got, want);
    ASSERT_EQ(store->Size(), model.contents().size());
    ASSERT_EQ(store->StateHash(), model.StateHash());
    const bool resizing = store->Info().old_bucket_count != 0;
    batches_mid_resize += resizing ? 1 : 0;
    // Every batch during a resize, a sample of the others (Verify is O(n)).
    if (resizing || i % 16 == 0) {
      const absl::Status verified = store->Verify();
      ASSERT_TRUE(verified.ok()) << verified;
    }
    if (resizing) {
      // Reads find keys in either table.
      for (int probe = 0; probe < 8; ++probe) {
        const std::string k = absl::StrCat("k", rng() % gen.keys);
        const auto it = model.contents().find(k);
        ASSERT_EQ(store->Get(k), it == model.contents().end()
                                     ? std::nullopt
                                     : std::optional<std::string>(it->second))
            << k;
      }
    }
  }
  EXPECT_EQ(testing::Contents(*store), model.contents());
  EXPECT_GE(store->Info().bucket_count, 8192u);
  EXPECT_GE(store->Stats().resizes_started, 9u);
  EXPECT_GT(batches_mid_resize, kBatches / 10);
  std::printf("%lu keys, %lu buckets, %lu of %lu batches during a resize\n",
              static_cast<unsigned long>(store->Size()),
              static_cast<unsigned long>(store->Info().bucket_count),
              static_cast<unsigned long>(batches_mid_resize),
              static_cast<unsigned long>(kBatches));
}

// Pacing: from 64 buckets up, every resize finishes (two old buckets per
// inserted key, plus 64 per batch) before the keys reach the next bound,
// even when one batch inserts thousands of keys and starts and ends
// several resizes; and a batch that inserts nothing still makes progress.
TEST_F(KvStoreTest, ResizeFinishesBeforeTheNextIsDue) {
  options_.initial_bucket_count = 64;
  options_.pool_bytes = 64ull << 20;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  testing::Model model;
  std::mt19937_64 rng(3);
  uint64_t key = 0;
  auto inserts = [&](uint64_t n) {
    std::vector<std::string> kv;
    for (uint64_t i = 0; i < n; ++i) {
      kv.push_back(absl::StrCat("key", key++));
      kv.push_back("v");
    }
    std::vector<Op> ops = {MSet(kv)};
    model.Apply(ops);
    Apply(*store, ops);
  };
  while (key < 20000) inserts(1 + rng() % 3);  // Mostly one key per batch.
  inserts(30000);                               // One batch, several doublings.
  for (int i = 0; i < 300; ++i) inserts(1 + rng() % 200);
  EXPECT_EQ(store->Stats().resizes_finished_at_once, 0u);
  EXPECT_GE(store->Stats().resizes_started, 11u);
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();
  EXPECT_EQ(testing::Contents(*store), model.contents());
  // Deletes during a resize, then batches without inserts, finish it.
  if (store->Info().old_bucket_count == 0) inserts(store->Info().bucket_count);
  ASSERT_NE(store->Info().old_bucket_count, 0u);
  std::vector<std::string> doomed;
  for (uint64_t k = 0; k < key; k += 3) doomed.push_back(absl::StrCat("key", k));
  const std::vector<Op> del = {Del(doomed)};
  model.Apply(del);
  Apply(*store, del);
  FinishResize(*store);
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();
  EXPECT_EQ(testing::Contents(*store), model.contents());
  EXPECT_EQ(store->Stats().resizes_finished_at_once, 0u);
}

// Below 64 buckets a batch may insert faster than the pacing moves
// buckets: the next resize then finishes the previous one at once.
TEST_F(KvStoreTest, SmallTableFinishesResizeAtOnce) {
  options_.initial_bucket_count = 16;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  std::vector<std::string> kv;
  for (int i = 0; i < 40; ++i) {
    kv.push_back(absl::StrCat("key", i));
    kv.push_back("v");
  }
  Apply(*store, {MSet(kv)});
  EXPECT_EQ(store->Stats().resizes_started, 2u);  // 16 -> 32 -> 64.
  EXPECT_EQ(store->Stats().resizes_finished_at_once, 1u);
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();
  EXPECT_EQ(store->Size(), 40u);
}

// A pool closed in the middle of a resize reopens (verified) in the same
// state, and the resize carries on from the cursor.
TEST_F(KvStoreTest, ReopenMidResize) {
  options_.initial_bucket_count = 1024;
  testing::Model model;
  StoreInfo before;
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    for (int b = 0; store->Info().migrate_cursor < 256; ++b) {
      std::vector<Op> ops;
      for (int i = 0; i < 20; ++i) ops.push_back(Set(absl::StrCat("key", b * 20 + i), "v"));
      model.Apply(ops);
      Apply(*store, ops);
      ASSERT_LT(b, 1000);
    }
    before = store->Info();
  }
  EXPECT_EQ(before.bucket_count, 2048u);
  EXPECT_EQ(before.old_bucket_count, 1024u);
  options_.create_if_missing = false;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Info().migrate_cursor, before.migrate_cursor);
  EXPECT_EQ(store->Info().old_bucket_count, 1024u);
  EXPECT_EQ(testing::Contents(*store), model.contents());
  for (const auto& [k, v] : model.contents()) ASSERT_EQ(store->Get(k), v) << k;
  Apply(*store, {Set("key0", "new"), Del({"key1"}), Set("fresh", "f")});
  model.Apply(std::vector{Set("key0", "new"), Del({"key1"}), Set("fresh", "f")});
  EXPECT_GT(store->Info().migrate_cursor, before.migrate_cursor);
  FinishResize(*store);
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();
  EXPECT_EQ(testing::Contents(*store), model.contents());
  EXPECT_EQ(store->StateHash(), model.StateHash());
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
  EXPECT_EQ(store->Size(), model.contents().size());
  EXPECT_EQ(store->StateHash(), model.StateHash());
  EXPECT_EQ(testing::Contents(*store), model.contents());
  EXPECT_EQ(store->Stats().transactions, 0u) << "stats count since open";
  const StoreInfo info = store->Info();
  EXPECT_EQ(info.cluster_id, 7u);
  EXPECT_EQ(info.node_id, 2u);
  EXPECT_EQ(info.layout_version, kv_format::kLayoutVersion);
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
  const std::vector<Op> ops = {Set("a", "1"), Op{OpCode::kSet, {"only-key"}, 0}};
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
  other.initial_bucket_count = 16;
  options_.initial_bucket_count = 16;
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
  EXPECT_EQ(testing::Contents(*a), model.contents());
  EXPECT_EQ(testing::Contents(**b), model.contents());
  EXPECT_GT(a->Info().bucket_count, 16u);
  EXPECT_TRUE(a->Verify().ok()) << a->Verify();
  EXPECT_TRUE((*b)->Verify().ok()) << (*b)->Verify();
  // Same state, different histories: the hash depends on content only.
  StoreOptions third = options_;
  third.path = dir_.Path("third.pool");
  auto c = KvStore::Open(third);
  ASSERT_TRUE(c.ok());
  std::vector<Op> load;
  for (const auto& [k, v] : model.contents()) load.push_back(Set(k, v));
  ASSERT_TRUE((*c)->ApplyBatch(1, load).ok());
  EXPECT_EQ((*c)->StateHash(), a->StateHash());
}

// From a byte-identical initial pool, the same batches give byte-identical
// pool files: nothing depends on addresses, time or randomness.
TEST_F(KvStoreTest, SameInitialPoolSameBytes) {
  options_.pool_bytes = 16ull << 20;
  options_.initial_bucket_count = 16;  // Resizes, and a run that ends mid-resize.
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
    EXPECT_GE((*store)->Stats().resizes_started, 3u);
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

// A full pool aborts the batch: ResourceExhausted, nothing applied, and the
// store keeps working.
TEST_F(KvStoreTest, PoolFullAbortsWholeBatch) {
  options_.pool_bytes = PMEMOBJ_MIN_POOL;
  options_.initial_bucket_count = 16;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  testing::Model model;
  const std::string value(64 << 10, 'v');
  uint64_t index = 0;
  absl::Status failure;
  int key = 0;
  while (failure.ok()) {
    // Mixed batches: updates of an existing key (snapshots), new keys
    // (allocations, resizes) and a delete.
    std::vector<Op> ops = {Set("first", absl::StrCat(index)), IncrBy("counter", 1)};
    for (int i = 0; i < 4; ++i) ops.push_back(Set(absl::StrCat("key", key++), value));
    if (index > 3) ops.push_back(Del({absl::StrCat("key", index)}));
    const uint64_t hash_before = store->StateHash();
    auto r = store->ApplyBatch(++index, ops);
    if (!r.ok()) {
      failure = r.status();
      EXPECT_EQ(store->AppliedIndex(), index - 1);
      EXPECT_EQ(store->StateHash(), hash_before);
      break;
    }
    model.Apply(ops);
    ASSERT_LT(index, 1000u) << "the pool never filled";
  }
  EXPECT_EQ(failure.code(), absl::StatusCode::kResourceExhausted) << failure;
  EXPECT_EQ(store->StateHash(), model.StateHash());
  EXPECT_EQ(testing::Contents(*store), model.contents());
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();
  // Freeing space lets the next index through.
  std::vector<std::string> keys;
  for (int i = 0; i < key / 2; ++i) keys.push_back(absl::StrCat("key", i));
  const std::vector<Op> del = {Del(keys)};
  model.Apply(del);
  ASSERT_TRUE(store->ApplyBatch(index, del).ok());
  EXPECT_EQ(testing::Contents(*store), model.contents());
  store.reset();
  store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->StateHash(), model.StateHash());
}

// Regression: within one batch a value shrinks in place and then grows in
// place again, into bytes that were live when the transaction began. An
// abort (here: the pool cannot hold the batch's last op) must restore them;
// crash recovery replays the same undo log.
TEST_F(KvStoreTest, AbortRestoresValueShrunkThenGrownInPlace) {
  options_.pool_bytes = PMEMOBJ_MIN_POOL;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  const std::string original(200, 'a');
  Apply(*store, {Set("k", original)});
  const uint64_t hash = store->StateHash();
  auto r = store->ApplyBatch(2, std::vector{Set("k", std::string(150, 'b')),
                                            Append("k", std::string(40, 'c')),
                                            Set("huge", std::string(kValueBytesMax, 'h'))});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_EQ(store->Get("k"), original);
  EXPECT_EQ(store->StateHash(), hash);
  EXPECT_TRUE(store->Verify().ok()) << store->Verify();
}

TEST_F(KvStoreTest, RejectsBadOptions) {
  StoreOptions o = options_;
  o.path = "";
  EXPECT_EQ(KvStore::Open(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = options_;
  o.initial_bucket_count = 100;
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
  EXPECT_THAT(s.status().message(), HasSubstr("not a Blizzard KV pool"));
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
  pop = pmemobj_create(options_.path.c_str(), kv_format::kLayoutName, PMEMOBJ_MIN_POOL, 0600);
  ASSERT_NE(pop, nullptr);
  pmemobj_close(pop);
  s = KvStore::Open(options_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("no Blizzard KV header"));
  // A truncated pool.
  unlink(options_.path.c_str());
  { ASSERT_NE(OpenOrDie(), nullptr); }
  ASSERT_EQ(truncate(options_.path.c_str(), 4096), 0);
  s = KvStore::Open(options_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
}

// Edits the root of a closed pool through libpmemobj, as damage or another
// build would leave it.
void EditRoot(const std::string& path, const std::function<void(kv_format::Root*)>& edit) {
  PMEMobjpool* pop = pmemobj_open(path.c_str(), kv_format::kLayoutName);
  ASSERT_NE(pop, nullptr) << pmemobj_errormsg();
  auto* root = static_cast<kv_format::Root*>(
      pmemobj_direct(pmemobj_root(pop, sizeof(kv_format::Root))));
  edit(root);
  pmemobj_persist(pop, root, sizeof(*root));
  pmemobj_close(pop);
}

TEST_F(KvStoreTest, DamagedOrForeignHeader) {
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    Apply(*store, {Set("a", "1"), Set("b", "2")});
  }
  struct Case {
    std::function<void(kv_format::Root*)> edit;
    absl::StatusCode code;
    const char* message;
  };
  const Case cases[] = {
      {[](kv_format::Root* r) { r->header.magic ^= 1; }, absl::StatusCode::kFailedPrecondition,
       "bad magic"},
      {[](kv_format::Root* r) { r->header.node_id = 99; }, absl::StatusCode::kDataLoss,
       "header checksum mismatch"},
      {[](kv_format::Root* r) {
         r->header.layout_version = 1;  // Before the incremental resize.
         r->header.checksum = kv_format::HeaderChecksum(r->header);
       },
       absl::StatusCode::kFailedPrecondition, "layout version 1, this build reads version 2"},
      {[](kv_format::Root* r) { r->bucket_count = 1000; }, absl::StatusCode::kDataLoss,
       "bad bucket count"},
      {[](kv_format::Root* r) { r->directory.off = 1ull << 40; }, absl::StatusCode::kDataLoss,
       "bucket directory {0x"},
      {[](kv_format::Root* r) { r->key_count++; }, absl::StatusCode::kDataLoss, "key count 3"},
      {[](kv_format::Root* r) { r->state_hash++; }, absl::StatusCode::kDataLoss, "state hash"},
      // Keys no longer hash to the buckets that hold them.
      {[](kv_format::Root* r) { r->bucket_count *= 4; }, absl::StatusCode::kDataLoss,
       "is not in its new bucket"},
      {[](kv_format::Root* r) { r->migrate_cursor = 1; }, absl::StatusCode::kDataLoss,
       "migrate cursor 1 without a resize in progress"},
      {[](kv_format::Root* r) { r->old_directory = r->directory; },
       absl::StatusCode::kDataLoss, "segment 0 should not exist"},
  };
  for (const Case& c : cases) {
    const std::string saved = ReadFile(options_.path);
    EditRoot(options_.path, c.edit);
    auto s = KvStore::Open(options_);
    EXPECT_EQ(s.status().code(), c.code) << s.status();
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.message));
    WriteFile(options_.path, saved);
  }
  EXPECT_NE(OpenOrDie(), nullptr);
}

// Bytes flipped inside the pool file, where a value and a link live: Open
// (which verifies) refuses the pool with DataLoss.
TEST_F(KvStoreTest, DamagedEntryIsCaughtOnOpen) {
  const std::string marker = "UNIQUE-VALUE-MARKER-0123456789";
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    Apply(*store, {Set("k", marker), Set("other", "x")});
  }
  const std::string good = ReadFile(options_.path);
  const size_t at = good.find(marker);
  ASSERT_NE(at, std::string::npos);
  std::string bad = good;
  bad[at + 3] ^= 0x20;
  WriteFile(options_.path, bad);
  auto s = KvStore::Open(options_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("pair checksum mismatch"));
  // The entry header sits right before the key "k": its `next` link
  // (40 bytes before the key) pointing elsewhere is caught as well.
  bad = good;
  const size_t entry = at - 1 - sizeof(kv_format::Entry);
  uint64_t off;
  std::memcpy(&off, &bad[entry + 8], sizeof(off));
  off += 64;
  std::memcpy(&bad[entry + 8], &off, sizeof(off));
  WriteFile(options_.path, bad);
  s = KvStore::Open(options_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  // Without verify_on_open the damage is found by an explicit Verify().
  bad = good;
  bad[at + 3] ^= 0x20;
  WriteFile(options_.path, bad);
  options_.verify_on_open = false;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Verify().code(), absl::StatusCode::kDataLoss);
}

// Objects the tables do not reach: a well-formed entry (a leak, or an
// entry cut out of its chain), a stray segment, an object of a type the
// store never allocates. Open refuses each.
TEST_F(KvStoreTest, StrayObjectsAreCaughtOnOpen) {
  options_.pool_bytes = PMEMOBJ_MIN_POOL;
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    Apply(*store, {Set("a", "1"), Set("b", "2")});
  }
  struct Case {
    uint64_t type;
    size_t bytes;
    const char* message;
  };
  const Case cases[] = {
      {kv_format::kEntryType, sizeof(kv_format::Entry) + 2, "1 allocated objects are unreachable"},
      {kv_format::kSegmentType, 64, "1 allocated objects are unreachable"},
      {7, 64, "unknown type 7"},
  };
  for (const Case& c : cases) {
    const std::string saved = ReadFile(options_.path);
    PMEMobjpool* pop = pmemobj_open(options_.path.c_str(), kv_format::kLayoutName);
    ASSERT_NE(pop, nullptr) << pmemobj_errormsg();
    PMEMoid oid;
    ASSERT_EQ(pmemobj_zalloc(pop, &oid, c.bytes, c.type), 0);
    if (c.type == kv_format::kEntryType) {  // "k" = "v", checksums right.
      auto* e = static_cast<kv_format::Entry*>(pmemobj_direct(oid));
      e->key_bytes = 1;
      e->value_bytes = 1;
      std::memcpy(e + 1, "kv", 2);
      e->key_hash = kv_format::KeyHash("k");
      e->pair_hash = kv_format::PairHash("k", "v");
      pmemobj_persist(pop, e, c.bytes);
    }
    pmemobj_close(pop);
    auto s = KvStore::Open(options_);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.message));
    WriteFile(options_.path, saved);
  }
  EXPECT_NE(OpenOrDie(), nullptr);
}

// The resize state of a pool in the middle of a resize, damaged: Open
// (which verifies) refuses it with DataLoss.
TEST_F(KvStoreTest, DamagedResizeStateIsCaughtOnOpen) {
  options_.initial_bucket_count = 256;
  options_.pool_bytes = PMEMOBJ_MIN_POOL;  // Copied once per case.
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    // Key 257 starts doubling to 512; the batch moves 2 + 64 old buckets.
    std::vector<Op> ops;
    for (int i = 0; i < 257; ++i) ops.push_back(Set(absl::StrCat("key", i), "v"));
    Apply(*store, ops);
    ASSERT_EQ(store->Info().bucket_count, 512u);
    ASSERT_EQ(store->Info().old_bucket_count, 256u);
    ASSERT_EQ(store->Info().migrate_cursor, 66u);
    ASSERT_TRUE(store->Verify().ok()) << store->Verify();
  }
  struct Case {
    std::function<void(kv_format::Root*)> edit;
    const char* message;
  };
  const Case cases[] = {
      {[](kv_format::Root* r) { r->migrate_cursor = 256; }, "with migrate cursor 256"},
      // The moved buckets' keys would be looked up in the old table.
      {[](kv_format::Root* r) { r->migrate_cursor = 0; }, "segment 0 should not exist"},
      {[](kv_format::Root* r) { r->migrate_cursor = 65; }, "has not moved (cursor 65)"},
      {[](kv_format::Root* r) { r->old_directory.off = 1ull << 40; },
       "old bucket directory {0x"},
      {[](kv_format::Root* r) { r->old_directory = OID_NULL; },
       "migrate cursor 66 without a resize in progress"},
      {[](kv_format::Root* r) { r->old_directory = r->directory; }, "reachable twice"},
      {[](kv_format::Root* r) { r->bucket_count = 1024; }, "is not in its new bucket"},
      // The moved buckets' segment dropped from the new directory.
      {[](kv_format::Root* r) {
         static_cast<PMEMoid*>(pmemobj_direct(r->directory))[0] = OID_NULL;
       },
       "new table: segment 0 is missing"},
  };
  for (const Case& c : cases) {
    const std::string saved = ReadFile(options_.path);
    EditRoot(options_.path, c.edit);
    auto s = KvStore::Open(options_);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.message));
    WriteFile(options_.path, saved);
  }
  EXPECT_NE(OpenOrDie(), nullptr);
}

}  // namespace
}  // namespace blizzard::structures
