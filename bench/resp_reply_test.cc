#include "bench/resp_reply.h"

#include <string>
#include <vector>

#include "bench/rng.h"
#include "gtest/gtest.h"

namespace blizzard::bench {
namespace {

std::vector<Reply> ParseAll(ReplyParser& p) {
  std::vector<Reply> out;
  for (;;) {
    absl::StatusOr<std::optional<Reply>> r = p.Next();
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || !r->has_value()) return out;
    out.push_back(**r);
  }
}

const std::string kStream =
    "+OK\r\n"
    "-ERR unknown command 'ZADD'\r\n"
    ":-42\r\n"
    "$5\r\nhello\r\n"
    "$0\r\n\r\n"
    "$-1\r\n"
    "*-1\r\n"
    "*0\r\n"
    "*3\r\n$1\r\na\r\n*2\r\n:1\r\n+x\r\n$-1\r\n"
    "$4\r\na\r\nb\r\n";

void ExpectStream(const std::vector<Reply>& r) {
  ASSERT_EQ(r.size(), 10u);
  EXPECT_EQ(r[0].type, ReplyType::kSimple);
  EXPECT_EQ(r[0].text, "OK");
  EXPECT_EQ(r[1].type, ReplyType::kError);
  EXPECT_EQ(r[1].text, "ERR unknown command 'ZADD'");
  EXPECT_EQ(r[2].type, ReplyType::kInteger);
  EXPECT_EQ(r[2].integer, -42);
  EXPECT_EQ(r[3].type, ReplyType::kBulk);
  EXPECT_EQ(r[3].text, "hello");
  EXPECT_EQ(r[4].type, ReplyType::kBulk);
  EXPECT_EQ(r[4].text, "");
  EXPECT_EQ(r[5].type, ReplyType::kNull);
  EXPECT_EQ(r[6].type, ReplyType::kNull);
  EXPECT_EQ(r[7].type, ReplyType::kArray);
  EXPECT_EQ(r[7].integer, 0);
  EXPECT_EQ(r[8].type, ReplyType::kArray);  // Nested elements consumed.
  EXPECT_EQ(r[8].integer, 3);
  EXPECT_EQ(r[9].type, ReplyType::kBulk);  // Binary-safe payload.
  EXPECT_EQ(r[9].text, "a\r\nb");
}

TEST(ReplyParser, AllTypesAtOnce) {
  ReplyParser p;
  p.Feed(kStream);
  ExpectStream(ParseAll(p));
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST(ReplyParser, AnySplitGivesTheSameReplies) {
  const uint64_t seed = 17;
  Rng rng(seed);
  for (int trial = 0; trial < 300; ++trial) {
    SCOPED_TRACE(testing::Message() << "seed=" << seed << " trial=" << trial);
    ReplyParser p;
    std::vector<Reply> replies;
    size_t pos = 0;
    while (pos < kStream.size()) {
      const size_t n = std::min<size_t>(1 + rng.Below(7), kStream.size() - pos);
      p.Feed(std::string_view(kStream).substr(pos, n));
      pos += n;
      for (Reply& r : ParseAll(p)) replies.push_back(std::move(r));
    }
    ExpectStream(replies);
  }
}

TEST(ReplyParser, IncompleteWaits) {
  ReplyParser p;
  p.Feed("$10\r\nhello");
  EXPECT_FALSE(p.Next()->has_value());
  p.Feed("world\r");
  EXPECT_FALSE(p.Next()->has_value());
  p.Feed("\n");
  absl::StatusOr<std::optional<Reply>> r = p.Next();
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->text, "helloworld");
}

void ExpectInvalid(std::string_view bytes, ReplyLimits limits = {}) {
  SCOPED_TRACE(testing::Message() << "input: " << testing::PrintToString(std::string(bytes)));
  ReplyParser p(limits);
  p.Feed(bytes);
  absl::StatusOr<std::optional<Reply>> r = p.Next();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  // Sticky: the same error again, whatever comes next.
  p.Feed("+OK\r\n");
  EXPECT_FALSE(p.Next().ok());
}

TEST(ReplyParser, RejectsMalformed) {
  ExpectInvalid("?what\r\n");
  ExpectInvalid(":12a\r\n");
  ExpectInvalid(":\r\n");
  ExpectInvalid(":-\r\n");
  ExpectInvalid(":99999999999999999999\r\n");
  ExpectInvalid("$-2\r\n");
  ExpectInvalid("$3\r\nabcd\r\n");
  ExpectInvalid("*-5\r\n");
  ExpectInvalid("+OK\rX");
  ExpectInvalid("$100\r\n", ReplyLimits{.bulk_bytes_max = 99});
  ExpectInvalid("*100\r\n", ReplyLimits{.array_elements_max = 99});
  ExpectInvalid("*1\r\n*1\r\n*1\r\n:1\r\n", ReplyLimits{.depth_max = 2});
  ExpectInvalid(std::string(100, 'x'), ReplyLimits{.line_bytes_max = 50});
  ExpectInvalid("+" + std::string(100, 'x') + "\r\n", ReplyLimits{.line_bytes_max = 50});
}

TEST(ReplyParser, IntegerExtremes) {
  ReplyParser p;
  p.Feed(":9223372036854775807\r\n:-9223372036854775808\r\n");
  std::vector<Reply> r = ParseAll(p);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].integer, INT64_MAX);
  EXPECT_EQ(r[1].integer, INT64_MIN);
  ExpectInvalid(":9223372036854775808\r\n");
}

TEST(ReplyParser, RandomBytesNeverCrash) {
  const uint64_t seed = 23;
  Rng rng(seed);
  const std::string alphabet = "+-:$*\r\n0123456789-abc";
  for (int trial = 0; trial < 2000; ++trial) {
    ReplyParser p(ReplyLimits{.line_bytes_max = 64, .bulk_bytes_max = 64,
                              .array_elements_max = 64, .depth_max = 4});
    std::string bytes;
    const size_t n = rng.Below(64);
    for (size_t i = 0; i < n; ++i) bytes.push_back(alphabet[rng.Below(alphabet.size())]);
    p.Feed(bytes);
    for (int i = 0; i < 100; ++i) {
      absl::StatusOr<std::optional<Reply>> r = p.Next();
      if (!r.ok() || !r->has_value()) break;
    }
    ASSERT_LE(p.buffered_bytes(), bytes.size()) << "seed=" << seed << " trial=" << trial;
  }
}

TEST(ReplyParser, LargeArrayInPiecesIsLinear) {
  // 100,000 elements fed a few bytes at a time parse in one pass (the test
  // would time out if each Feed rescanned the array from its start).
  std::string s = "*100000\r\n";
  for (int i = 0; i < 100000; ++i) s += ":1\r\n";
  ReplyParser p;
  int replies = 0;
  for (size_t pos = 0; pos < s.size(); pos += 3) {
    p.Feed(std::string_view(s).substr(pos, 3));
    absl::StatusOr<std::optional<Reply>> r = p.Next();
    ASSERT_TRUE(r.ok());
    if (r->has_value()) {
      ++replies;
      EXPECT_EQ((*r)->integer, 100000);
    }
  }
  EXPECT_EQ(replies, 1);
}

}  // namespace
}  // namespace blizzard::bench
