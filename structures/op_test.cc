#include "structures/op.h"

#include <cstdint>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "structures/test_util.h"

namespace blizzard::structures {
namespace {

using ::testing::HasSubstr;

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

absl::StatusOr<std::vector<Op>> Decode(const std::string& s) { return DecodeBatch(Bytes(s)); }

Op MakeOp(OpCode code, std::vector<std::string> args, int64_t delta = 0) {
  return Op{.code = code, .args = std::move(args), .delta = delta, .scores = {}};
}

TEST(ValidateOpTest, ArityPerOpcode) {
  EXPECT_TRUE(ValidateOp(MakeOp(OpCode::kSet, {"k", "v"})).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kSet, {"k"})).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kSet, {"k", "v", "x"})).ok());
  EXPECT_TRUE(ValidateOp(MakeOp(OpCode::kDel, {"a"})).ok());
  EXPECT_TRUE(ValidateOp(MakeOp(OpCode::kDel, {"a", "b", "a"})).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kDel, {})).ok());
  EXPECT_TRUE(ValidateOp(MakeOp(OpCode::kIncrBy, {"k"}, -3)).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kIncrBy, {"k", "1"})).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kIncrBy, {})).ok());
  EXPECT_TRUE(ValidateOp(MakeOp(OpCode::kAppend, {"k", ""})).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kAppend, {"k"})).ok());
  EXPECT_TRUE(ValidateOp(MakeOp(OpCode::kMSet, {"a", "1", "b", "2"})).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kMSet, {"a", "1", "b"})).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kMSet, {})).ok());
  const absl::Status s = ValidateOp(MakeOp(OpCode::kSet, {"k"}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("SET"));
}

TEST(ValidateOpTest, UnknownOpcodeAndStrayDelta) {
  EXPECT_EQ(ValidateOp(MakeOp(static_cast<OpCode>(0), {"k", "v"})).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateOp(MakeOp(static_cast<OpCode>(16), {"k", "v"})).code(),
            absl::StatusCode::kInvalidArgument);
  // The encoding has no delta outside INCRBY; it would be silently lost.
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kSet, {"k", "v"}, 1)).ok());
}

TEST(ValidateOpTest, SizeLimits) {
  const std::string key_max(kKeyBytesMax, 'k');
  const std::string key_over(kKeyBytesMax + 1, 'k');
  EXPECT_TRUE(ValidateOp(MakeOp(OpCode::kSet, {key_max, "v"})).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kSet, {key_over, "v"})).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kDel, {"a", key_over})).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kIncrBy, {key_over})).ok());
  // A value may be longer than a key: the MSET value slot takes 64 KiB + 1.
  EXPECT_TRUE(ValidateOp(MakeOp(OpCode::kMSet, {"a", key_over})).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kMSet, {key_over, "v"})).ok());
  const std::string value_max(kValueBytesMax, 'v');
  EXPECT_TRUE(ValidateOp(MakeOp(OpCode::kSet, {"k", value_max})).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kAppend, {"k", value_max + "v"})).ok());
  std::vector<std::string> many(kArgsPerOpMax, "k");
  EXPECT_TRUE(ValidateOp(MakeOp(OpCode::kDel, many)).ok());
  EXPECT_TRUE(ValidateOp(MakeOp(OpCode::kMSet, many)).ok());
  many.push_back("k");
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kDel, many)).ok());
}

// The exact bytes FORMAT.md documents.
TEST(EncodeBatchTest, GoldenBytes) {
  EXPECT_EQ(EncodeBatch({}), std::string("\x02\x00", 2));
  EXPECT_EQ(EncodeBatch({MakeOp(OpCode::kSet, {"k", "v"})}),
            std::string("\x02\x01"
                        "\x01\x01k\x01v",
                        7));
  EXPECT_EQ(EncodeBatch({MakeOp(OpCode::kDel, {"a", "bc"})}),
            std::string("\x02\x01"
                        "\x02\x02\x01"
                        "a\x02"
                        "bc",
                        9));
  EXPECT_EQ(EncodeBatch({MakeOp(OpCode::kIncrBy, {"n"}, -1)}),
            std::string("\x02\x01"
                        "\x03\x01n\x01",
                        6));
  EXPECT_EQ(EncodeBatch({MakeOp(OpCode::kIncrBy, {"n"}, 64)}),
            std::string("\x02\x01"
                        "\x03\x01n\x80\x01",
                        7));
  EXPECT_EQ(EncodeBatch({MakeOp(OpCode::kAppend, {"k", ""})}),
            std::string("\x02\x01"
                        "\x04\x01k\x00",
                        6));
  EXPECT_EQ(EncodeBatch({MakeOp(OpCode::kMSet, {"a", "1", "b", "2"})}),
            std::string("\x02\x01"
                        "\x05\x02\x01"
                        "a\x01"
                        "1\x01"
                        "b\x01"
                        "2",
                        12));
  // INT64_MIN zigzags to 2^64-1: the longest (10-byte) varint.
  const std::string min = EncodeBatch({MakeOp(OpCode::kIncrBy, {""}, INT64_MIN)});
  EXPECT_EQ(min, std::string("\x02\x01\x03\x00"
                             "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                             14));
  // Typed ops (version 2).
  EXPECT_EQ(EncodeBatch({MakeOp(OpCode::kRPush, {"l", "a", "b"})}),
            std::string("\x02\x01"
                        "\x07\x03\x01l\x01"
                        "a\x01"
                        "b",
                        10));
  EXPECT_EQ(EncodeBatch({MakeOp(OpCode::kLPop, {"l"}, kNoCount)}),
            std::string("\x02\x01"
                        "\x08\x01l\x01",
                        6));
  EXPECT_EQ(EncodeBatch({MakeOp(OpCode::kZPopMax, {"z"}, 2)}),
            std::string("\x02\x01"
                        "\x0f\x01z\x04",
                        6));
  Op zadd = MakeOp(OpCode::kZAdd, {"z", "m"});
  zadd.scores = {1.5};  // 0x3ff8000000000000
  EXPECT_EQ(EncodeBatch({zadd}), std::string("\x02\x01"
                                             "\x0c\x01\x01z"
                                             "\x00\x00\x00\x00\x00\x00\xf8\x3f"
                                             "\x01m",
                                             16));
}

TEST(ValidateOpTest, TypedOps) {
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kLPush, {"k"})).ok());  // No elements.
  EXPECT_TRUE(ValidateOp(MakeOp(OpCode::kLPush, {"k", "e"})).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kLPop, {"k"}, -2)).ok());
  EXPECT_TRUE(ValidateOp(MakeOp(OpCode::kLPop, {"k"}, kNoCount)).ok());
  EXPECT_FALSE(ValidateOp(MakeOp(OpCode::kSAdd, {"k", "m"}, 1)).ok());  // Stray count.
  Op zadd = MakeOp(OpCode::kZAdd, {"k", "m"});
  EXPECT_FALSE(ValidateOp(zadd).ok());  // No score.
  zadd.scores = {std::nan("")};
  EXPECT_FALSE(ValidateOp(zadd).ok());
  zadd.scores = {HUGE_VAL};
  EXPECT_TRUE(ValidateOp(zadd).ok());
  Op sadd = MakeOp(OpCode::kSAdd, {"k", "m"});
  sadd.scores = {1};
  EXPECT_FALSE(ValidateOp(sadd).ok());  // Scores only for ZADD.
}

TEST(ScoreTest, FormatAndParseLikeRedis) {
  EXPECT_EQ(FormatScore(1), "1");
  EXPECT_EQ(FormatScore(2.5), "2.5");
  EXPECT_EQ(FormatScore(-0.1), "-0.1");
  EXPECT_EQ(FormatScore(HUGE_VAL), "inf");
  EXPECT_EQ(FormatScore(-HUGE_VAL), "-inf");
  EXPECT_EQ(FormatScore(1e300), "1e+300");
  double d = 0;
  EXPECT_TRUE(ParseScore("1.5", &d));
  EXPECT_EQ(d, 1.5);
  EXPECT_TRUE(ParseScore("+2", &d));
  EXPECT_EQ(d, 2);
  EXPECT_TRUE(ParseScore("-inf", &d));
  EXPECT_EQ(d, -HUGE_VAL);
  EXPECT_TRUE(ParseScore("+INF", &d));
  EXPECT_EQ(d, HUGE_VAL);
  EXPECT_TRUE(ParseScore("1e3", &d));
  EXPECT_EQ(d, 1000);
  for (const char* bad : {"", "nan", "NaN", "1.5x", " 1", "abc", "+-1", "--1", "1 "}) {
    EXPECT_FALSE(ParseScore(bad, &d)) << bad;
  }
}


TEST(DecodeBatchTest, RoundTripsExtremes) {
  const std::vector<Op> ops = {
      MakeOp(OpCode::kIncrBy, {""}, std::numeric_limits<int64_t>::min()),
      MakeOp(OpCode::kIncrBy, {"x"}, std::numeric_limits<int64_t>::max()),
      MakeOp(OpCode::kIncrBy, {"x"}, 0),
      MakeOp(OpCode::kSet, {std::string(kKeyBytesMax, 'k'), std::string(1000, '\0')}),
      MakeOp(OpCode::kDel, std::vector<std::string>(kArgsPerOpMax, "")),
  };
  auto decoded = Decode(EncodeBatch(ops));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, ops);
}

TEST(DecodeBatchTest, RejectsMalformedInput) {
  struct Case {
    std::string bytes;
    const char* why;
  };
  const Case cases[] = {
      {"", "truncated"},
      {std::string("\x01\x00", 2), "unsupported version 1"},
      {std::string("\x02", 1), "truncated varint"},
      {std::string("\x02\x01", 2), "op count beyond input"},
      {std::string("\x02\x00\x00", 3), "1 trailing bytes"},
      {std::string("\x02\x01\x10\x01k\x01v", 7), "unknown opcode 16"},
      {std::string("\x02\x01\x00\x01k\x01v", 7), "unknown opcode 0"},
      {std::string("\x02\x01\x01\x01k\x02v", 7), "truncated value"},
      {std::string("\x02\x01\x01\x81\x00k\x01v", 8), "non-canonical varint"},
      {std::string("\x02\x01\x02\x00\x01k", 6), "zero argument count"},
      {std::string("\x02\x01\x02\x05\x01k", 6), "argument count beyond input"},
      {std::string("\x02\x01\x05\x00\x01k", 6), "zero argument count"},
      {std::string("\x02\x01\x03\x01n"
                   "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02",
                   15),
       "varint overflows 64 bits"},
      {std::string("\x02\x01\x03\x01n"
                   "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x81\x00",
                   16),
       "varint overflows"},
      // Key length 64 KiB + 1 (varint 0x81 0x80 0x04).
      {std::string("\x02\x01\x01\x81\x80\x04", 6), "key of 65537 bytes exceeds 65536"},
      // Op count 2^16 + 1 (varint 0x81 0x80 0x04).
      {std::string("\x02\x81\x80\x04", 4), "op count 65537 exceeds 65536"},
      // DEL with 2^16 + 1 keys.
      {std::string("\x02\x01\x02\x81\x80\x04", 6), "argument count 65537 exceeds 65536"},
      // MSET with 2^15 + 1 pairs.
      {std::string("\x02\x01\x05\x81\x80\x02", 6), "argument count 65538 exceeds 65536"},
      // Typed ops: a push without elements, a negative pop count, a NaN score.
      {std::string("\x02\x01\x06\x01\x01k", 6), "key without elements"},
      {std::string("\x02\x01\x08\x01k\x03", 6), "negative count"},
      {std::string("\x02\x01\x0c\x01\x01z"
                   "\x00\x00\x00\x00\x00\x00\xf8\x7f\x01m",
                   16),
       "NaN score"},
  };
  for (const Case& c : cases) {
    auto r = Decode(c.bytes);
    ASSERT_FALSE(r.ok()) << c.why;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.why;
    EXPECT_THAT(r.status().message(), HasSubstr(c.why));
  }
}

// Properties over seeded random batches: round trip; every strict prefix
// is rejected; any bit flip is rejected or decodes to a batch that encodes
// back to exactly the flipped bytes (the encoding is canonical).
TEST(DecodeBatchTest, RandomBatchesRoundTripAndDamageIsCaught) {
  const uint64_t seed = 0x5eed0001;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  std::mt19937_64 rng(seed);
  testing::RandomOpOptions options;
  options.big_value_bytes = 300;
  options.ops_max = 12;
  int flips_accepted = 0;
  for (int iter = 0; iter < 400; ++iter) {
    const std::vector<Op> ops = testing::RandomBatch(rng, options);
    const std::string bytes = EncodeBatch(ops);
    auto decoded = Decode(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_EQ(*decoded, ops);
    for (size_t n = 0; n < bytes.size(); ++n) {
      ASSERT_FALSE(Decode(bytes.substr(0, n)).ok()) << "prefix " << n;
    }
    ASSERT_FALSE(Decode(bytes + "x").ok());
    for (int f = 0; f < 32; ++f) {
      std::string flipped = bytes;
      flipped[rng() % flipped.size()] ^= static_cast<char>(1u << (rng() % 8));
      auto r = Decode(flipped);
      if (r.ok()) {
        ++flips_accepted;  // E.g. a flipped byte inside a value.
        ASSERT_EQ(EncodeBatch(*r), flipped);
      }
    }
  }
  EXPECT_GT(flips_accepted, 0);
}

TEST(DecodeBatchTest, RandomBytesNeverCrash) {
  const uint64_t seed = 0x5eed0002;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  std::mt19937_64 rng(seed);
  int accepted = 0;
  for (int iter = 0; iter < 50000; ++iter) {
    std::string bytes(rng() % 48, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    // Bias towards plausible headers so the decoder gets past byte 0.
    if (!bytes.empty() && rng() % 2 == 0) bytes[0] = 1;
    if (bytes.size() > 1 && rng() % 2 == 0) bytes[1] = static_cast<char>(rng() % 4);
    if (bytes.size() > 2 && rng() % 2 == 0) bytes[2] = static_cast<char>(1 + rng() % 5);
    auto r = Decode(bytes);
    if (r.ok()) {
      ++accepted;
      ASSERT_EQ(EncodeBatch(*r), bytes);
    } else {
      ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace blizzard::structures
