#include "node/resp.h"

#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Allocation probe: the limits tests prove that a declared length allocates
// nothing by recording the largest single operator-new request in a window.
namespace {
std::atomic<bool> g_track_allocations{false};
std::atomic<size_t> g_allocation_bytes_max{0};

void* Allocate(size_t bytes) {
  if (g_track_allocations.load(std::memory_order_relaxed)) {
    size_t seen = g_allocation_bytes_max.load(std::memory_order_relaxed);
    while (bytes > seen &&
           !g_allocation_bytes_max.compare_exchange_weak(seen, bytes)) {
    }
  }
  void* p = std::malloc(bytes == 0 ? 1 : bytes);
  if (p == nullptr) std::abort();
  return p;
}
}  // namespace

void* operator new(size_t bytes) { return Allocate(bytes); }
void* operator new[](size_t bytes) { return Allocate(bytes); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace blizzard::node {
namespace {

using ::testing::ElementsAre;
using Request = std::vector<std::string>;

// Debian's Abseil has its own absl::string_view (not std::string_view).
std::string Hex(std::string_view s) {
  return absl::CHexEscape(absl::string_view(s.data(), s.size()));
}

// A string literal with its embedded NULs.
template <size_t N>
std::string_view Bytes(const char (&literal)[N]) {
  return std::string_view(literal, N - 1);
}

// Largest single allocation made while an instance is alive.
class AllocationProbe {
 public:
  AllocationProbe() {
    g_allocation_bytes_max = 0;
    g_track_allocations = true;
  }
  ~AllocationProbe() { g_track_allocations = false; }
  size_t largest_bytes() const { return g_allocation_bytes_max.load(); }
};

// Everything a stream produced: the requests, then either "needs more"
// (error unset) or the protocol error that ended it.
struct Outcome {
  std::vector<Request> requests;
  std::optional<absl::Status> error;

  bool operator==(const Outcome& other) const {
    return requests == other.requests && error == other.error;
  }
};

std::string Describe(const Outcome& outcome) {
  std::string s = absl::StrCat(outcome.requests.size(), " requests:");
  for (const Request& request : outcome.requests) {
    s += " [";
    for (const std::string& arg : request) {
      absl::StrAppend(&s, "\"", Hex(arg), "\" ");
    }
    s += "]";
  }
  absl::StrAppend(&s, outcome.error ? outcome.error->ToString() : " (more)");
  return s;
}

// Drains every request currently available.
void Drain(RespParser& parser, Outcome& outcome) {
  if (outcome.error) return;
  for (;;) {
    absl::StatusOr<std::optional<Request>> next = parser.Next();
    if (!next.ok()) {
      outcome.error = next.status();
      // The error is sticky.
      absl::StatusOr<std::optional<Request>> again = parser.Next();
      ASSERT_FALSE(again.ok());
      ASSERT_EQ(again.status(), next.status());
      ASSERT_EQ(parser.buffered_bytes(), 0u);
      return;
    }
    if (!next->has_value()) return;
    ASSERT_FALSE((*next)->empty()) << "a request without arguments escaped";
    outcome.requests.push_back(std::move(**next));
  }
}

// Feeds `stream` in pieces whose sizes come from `piece_bytes` (cycled).
Outcome ParseInPieces(std::string_view stream, const RespLimits& limits,
                      const std::vector<size_t>& piece_bytes) {
  RespParser parser(limits);
  Outcome outcome;
  size_t at = 0;
  for (size_t i = 0; at < stream.size(); ++i) {
    const size_t take =
        std::min(stream.size() - at, piece_bytes[i % piece_bytes.size()]);
    parser.Feed(stream.substr(at, take));
    at += take;
    Drain(parser, outcome);
  }
  Drain(parser, outcome);
  return outcome;
}

Outcome ParseWhole(std::string_view stream, const RespLimits& limits = {}) {
  return ParseInPieces(stream, limits, {stream.size() + 1});
}

Outcome ParseByteAtATime(std::string_view stream,
                         const RespLimits& limits = {}) {
  return ParseInPieces(stream, limits, {1});
}

// Whole, byte-at-a-time and a seeded random split all agree; returns the
// whole-buffer outcome.
Outcome ParseEveryWay(std::string_view stream, const RespLimits& limits,
                      uint64_t seed) {
  const Outcome whole = ParseWhole(stream, limits);
  const Outcome bytes = ParseByteAtATime(stream, limits);
  std::mt19937_64 rng(seed);
  std::vector<size_t> pieces(7);
  for (size_t& piece : pieces) piece = 1 + rng() % 9;
  const Outcome random = ParseInPieces(stream, limits, pieces);
  EXPECT_EQ(whole, bytes) << "seed=" << seed << "\nstream: "
                          << Hex(stream) << "\nwhole: "
                          << Describe(whole) << "\nbytes: " << Describe(bytes);
  EXPECT_EQ(whole, random) << "seed=" << seed << "\nstream: "
                           << Hex(stream) << "\nwhole: "
                           << Describe(whole)
                           << "\nrandom: " << Describe(random);
  return whole;
}

Outcome ParseEveryWay(std::string_view stream) {
  return ParseEveryWay(stream, RespLimits{}, 1);
}

void ExpectRequests(std::string_view stream,
                    const std::vector<Request>& expected) {
  const Outcome outcome = ParseEveryWay(stream);
  EXPECT_EQ(outcome.requests, expected) << Describe(outcome);
  EXPECT_FALSE(outcome.error.has_value()) << Describe(outcome);
}

void ExpectError(std::string_view stream, std::string_view message,
                 const RespLimits& limits = {}) {
  const Outcome outcome = ParseEveryWay(stream, limits, 7);
  ASSERT_TRUE(outcome.error.has_value())
      << Hex(stream) << " -> " << Describe(outcome);
  EXPECT_EQ(outcome.error->code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(outcome.error->message()), message) << Hex(stream);
}

// --- What real clients send (captured from redis-cli 7.0, redis-benchmark
// 7.0, python3-redis 4.3.4 and hiredis 0.14 talking to redis-server). ---

TEST(RespParserTest, RedisCliStream) {
  ExpectRequests(
      std::string_view("*3\r\n$3\r\nSET\r\n$14\r\nkey with space\r\n$9\r\n"
                       "bin\x01\r\nary\r\n*2\r\n$3\r\nGET\r\n$14\r\nkey with "
                       "space\r\n*1\r\n$4\r\nPING\r\n"),
      {{"SET", "key with space", "bin\x01\r\nary"},
       {"GET", "key with space"},
       {"PING"}});
}

TEST(RespParserTest, RedisBenchmarkStreamMixesInlineAndMultibulk) {
  // -P 2 pipelines; PING_INLINE is the one inline test.
  std::string stream =
      "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n"
      "PING\r\nPING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
  for (int i = 0; i < 2; ++i) {
    stream += "*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$5\r\nVXKeH\r\n";
  }
  stream += "*3\r\n$5\r\nLPUSH\r\n$6\r\nmylist\r\n$5\r\nVXKeH\r\n";
  ExpectRequests(stream, {{"CONFIG", "GET", "save"},
                          {"PING"},
                          {"PING"},
                          {"PING"},
                          {"PING"},
                          {"SET", "key:__rand_int__", "VXKeH"},
                          {"SET", "key:__rand_int__", "VXKeH"},
                          {"LPUSH", "mylist", "VXKeH"}});
}

TEST(RespParserTest, PythonRedisPipelineWithBinaryValue) {
  ExpectRequests(
      Bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\n"
            "GET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$2\r\n"
            "\x00\xff\r\n*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$1\r\n1\r\n"),
      {{"SET", "k", "v"},
       {"GET", "k"},
       {"SET", "a", std::string("\x00\xff", 2)},
       {"INCRBY", "n", "1"}});
}

TEST(RespParserTest, HiredisFormattedCommands) {
  ExpectRequests(
      Bytes("*3\r\n$3\r\nSET\r\n$2\r\nhk\r\n$3\r\nv\x00x\r\n*4\r\n"
            "$4\r\nHSET\r\n$1\r\nh\r\n$1\r\nf\r\n$2\r\n42\r\n*1\r\n"
            "$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$2\r\nhk\r\n"),
      {{"SET", "hk", std::string("v\0x", 3)},
       {"HSET", "h", "f", "42"},
       {"PING"},
       {"GET", "hk"}});
}

// --- Multibulk ---

TEST(RespParserTest, EmptyAndBinaryBulks) {
  ExpectRequests("*2\r\n$0\r\n\r\n$4\r\n\r\n\r\n\r\n", {{"", "\r\n\r\n"}});
  ExpectRequests("*1\r\n$3\r\n*1\r\r\n", {{"*1\r"}});
}

TEST(RespParserTest, ZeroAndNegativeCountsAreSkippedLikeRedis) {
  ExpectRequests("*0\r\n*-1\r\n*-100\r\n*1\r\n$4\r\nPING\r\n", {{"PING"}});
}

TEST(RespParserTest, IncompleteRequestNeedsMore) {
  const std::string full = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
  for (size_t cut = 0; cut < full.size(); ++cut) {
    RespParser parser;
    parser.Feed(std::string_view(full).substr(0, cut));
    absl::StatusOr<std::optional<Request>> next = parser.Next();
    ASSERT_TRUE(next.ok()) << cut;
    EXPECT_FALSE(next->has_value()) << cut;
    parser.Feed(std::string_view(full).substr(cut));
    next = parser.Next();
    ASSERT_TRUE(next.ok()) << cut;
    ASSERT_TRUE(next->has_value()) << cut;
    EXPECT_THAT(**next, ElementsAre("GET", "key"));
    EXPECT_EQ(parser.buffered_bytes(), 0u);
  }
}

TEST(RespParserTest, ManyPipelinedRequestsInOneBuffer) {
  std::string stream;
  std::vector<Request> expected;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = absl::StrCat("key:", i);
    if (i % 3 == 0) {
      absl::StrAppend(&stream, "GET ", key, "\r\n");
      expected.push_back({"GET", key});
    } else {
      absl::StrAppend(&stream, "*3\r\n$3\r\nSET\r\n$", key.size(), "\r\n", key,
                      "\r\n$", i, "\r\n", std::string(i, 'v'), "\r\n");
      expected.push_back({"SET", key, std::string(i, 'v')});
    }
  }
  ExpectRequests(stream, expected);
}

TEST(RespParserTest, LargeBulkInSmallPiecesIsCopiedAsItArrives) {
  const size_t bulk_bytes = 4u << 20;
  RespParser parser;
  parser.Feed(absl::StrCat("*2\r\n$3\r\nSET\r\n$", bulk_bytes, "\r\n"));
  const std::string piece(1000, 'x');
  size_t sent = 0;
  while (sent < bulk_bytes) {
    const size_t take = std::min(piece.size(), bulk_bytes - sent);
    parser.Feed(std::string_view(piece).substr(0, take));
    sent += take;
    absl::StatusOr<std::optional<Request>> next = parser.Next();
    ASSERT_TRUE(next.ok());
    ASSERT_FALSE(next->has_value());
    // The bytes moved into the argument: the buffer does not grow.
    ASSERT_EQ(parser.buffered_bytes(), 0u);
  }
  parser.Feed("\r\n");
  absl::StatusOr<std::optional<Request>> next = parser.Next();
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(next->has_value());
  ASSERT_EQ((*next)->size(), 2u);
  EXPECT_EQ((**next)[1], std::string(bulk_bytes, 'x'));
}

TEST(RespParserTest, LongInlineLineByteAtATime) {
  // 64 KiB fed one byte at a time: the newline search resumes where it
  // stopped, so this is linear.
  std::string line = "SET k " + std::string((64u << 10) - 8, 'v') + "\r\n";
  ASSERT_EQ(line.size(), 64u << 10);
  RespParser parser;
  for (size_t i = 0; i + 1 < line.size(); ++i) {
    parser.Feed(std::string_view(line).substr(i, 1));
    absl::StatusOr<std::optional<Request>> next = parser.Next();
    ASSERT_TRUE(next.ok()) << i;
    ASSERT_FALSE(next->has_value()) << i;
  }
  parser.Feed("\n");
  absl::StatusOr<std::optional<Request>> next = parser.Next();
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((**next)[2].size(), (64u << 10) - 8);
}

TEST(RespParserTest, SpanFeedMatchesStringFeed) {
  const uint8_t bytes[] = {'*', '1', '\r', '\n', '$', '2', '\r',
                           '\n', 0x00, 0xfe, '\r', '\n'};
  RespParser parser;
  parser.Feed(absl::MakeConstSpan(bytes));
  EXPECT_EQ(parser.buffered_bytes(), sizeof(bytes));
  absl::StatusOr<std::optional<Request>> next = parser.Next();
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(next->has_value());
  EXPECT_THAT(**next, ElementsAre(std::string("\x00\xfe", 2)));
}

// --- Inline ---

TEST(RespParserTest, InlineCommands) {
  ExpectRequests("PING\r\n", {{"PING"}});
  ExpectRequests("PING\n", {{"PING"}});  // Bare LF, as telnet may send.
  ExpectRequests("  SET\t k   v  \r\n", {{"SET", "k", "v"}});
  ExpectRequests("\r\n\n   \r\nPING\r\n", {{"PING"}});  // Blank lines skipped.
  ExpectRequests("SET k v\r\r\n", {{"SET", "k", "v"}});  // Only one \r dropped.
  ExpectRequests("a\vb\r\n", {{"a\vb"}});  // \v ends no token (sdssplitargs).
}

// Each case was checked against redis-server 7.0 (ECHO of the argument).
TEST(RespParserTest, InlineQuotingFollowsRedis) {
  ExpectRequests("SET \"a b\" 'c d'\r\n", {{"SET", "a b", "c d"}});
  ExpectRequests("ECHO \"\\x41\\n\"\r\n", {{"ECHO", "A\n"}});
  ExpectRequests("ECHO \"\\x4g\"\r\n", {{"ECHO", "x4g"}});
  ExpectRequests("ECHO \"\\a\\b\\t\\r\\\"\\\\\\q\"\r\n",
                 {{"ECHO", "\a\b\t\r\"\\q"}});
  ExpectRequests("ECHO 'a\\'b'\r\n", {{"ECHO", "a'b"}});
  ExpectRequests("ECHO 'a\\nb'\r\n", {{"ECHO", "a\\nb"}});  // No escapes in ''.
  ExpectRequests("ECHO a\"b c\"\r\n", {{"ECHO", "ab c"}});  // Quote mid-token.
  ExpectRequests("ECHO \"\" ''\r\n", {{"ECHO", "", ""}});
  ExpectRequests("ECHO \"a\"\vb\r\n", {{"ECHO", "a", "b"}});
  ExpectRequests(Bytes("ECHO a\0b\r\n"),
                 {{"ECHO", std::string("a\0b", 3)}});  // Binary-safe.
}

TEST(RespParserTest, UnbalancedQuotes) {
  for (std::string_view line :
       {"PING \"a\r\n", "PING 'a\r\n", "ECHO a\"b c\"d\r\n", "ECHO 'a'b\r\n",
        "ECHO \"a\\\"\r\n", "ECHO \"\\\r\n"}) {
    ExpectError(line, "Protocol error: unbalanced quotes in request");
  }
}

// --- Errors (texts are Redis' own where Redis has one) ---

TEST(RespParserTest, InvalidMultibulkLength) {
  for (std::string_view stream :
       {"*abc\r\n", "*+1\r\n", "*01\r\n", "*-0\r\n", "*\r\n", "*1-\r\n",
        "*--1\r\n", "* 1\r\n", "*1 \r\n", "*1\rx", "*1\n",
        "*99999999999999999999\r\n", "*123456789012345678901",
        "*2147483648\r\n"}) {
    ExpectError(stream, "Protocol error: invalid multibulk length");
  }
}

TEST(RespParserTest, InvalidBulkLength) {
  for (std::string_view stream :
       {"*1\r\n$-1\r\n", "*1\r\n$-5\r\n", "*1\r\n$+4\r\n", "*1\r\n$007\r\n",
        "*1\r\n$\r\n", "*1\r\n$4x\r\n", "*1\r\n$4\rx",
        "*1\r\n$10737418240\r\n", "*1\r\n$9223372036854775808\r\n"}) {
    ExpectError(stream, "Protocol error: invalid bulk length");
  }
}

TEST(RespParserTest, ExpectedDollar) {
  ExpectError("*1\r\nx\r\n", "Protocol error: expected '$', got 'x'");
  // Redis prints CR/LF as a space so the reply stays one line.
  ExpectError("*1\r\n\r\n", "Protocol error: expected '$', got ' '");
  ExpectError("*2\r\n$1\r\na\r\n*1\r\n",
              "Protocol error: expected '$', got '*'");
}

TEST(RespParserTest, BulkNotFollowedByCrlf) {
  // Redis skips these two bytes unchecked; we refuse them.
  ExpectError("*1\r\n$4\r\nPINGxx", "Protocol error: expected CRLF after bulk data");
  ExpectError("*1\r\n$4\r\nPING\rx", "Protocol error: expected CRLF after bulk data");
  ExpectError("*1\r\n$2\r\nPING\r\n", "Protocol error: expected CRLF after bulk data");
}

TEST(RespParserTest, ErrorIsStickyAndLaterInputIgnored) {
  RespParser parser;
  parser.Feed("*1\r\n$4\r\nPING\r\n*x\r\n");
  absl::StatusOr<std::optional<Request>> next = parser.Next();
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(next->has_value());
  next = parser.Next();
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(std::string(next.status().message()), "Protocol error: invalid multibulk length");
  parser.Feed("*1\r\n$4\r\nPING\r\n");
  EXPECT_EQ(parser.buffered_bytes(), 0u);
  next = parser.Next();
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(std::string(next.status().message()), "Protocol error: invalid multibulk length");
}

// --- Limits ---

TEST(RespParserTest, TenGigabyteBulkFailsBeforeAnyAllocation) {
  RespParser parser;
  AllocationProbe probe;
  parser.Feed("*2\r\n$3\r\nSET\r\n$10737418240\r\n");
  absl::StatusOr<std::optional<Request>> next = parser.Next();
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(std::string(next.status().message()), "Protocol error: invalid bulk length");
  EXPECT_LT(probe.largest_bytes(), 4096u);
}

TEST(RespParserTest, DeclaredButUnsentBulkReservesNothing) {
  // Even when the limits allow 10 GB, declaring it costs nothing until the
  // bytes arrive.
  RespLimits limits;
  limits.bulk_bytes_max = size_t{1} << 40;
  limits.request_bytes_max = size_t{1} << 40;
  RespParser parser(limits);
  AllocationProbe probe;
  parser.Feed("*2\r\n$3\r\nSET\r\n$10737418240\r\nabc");
  absl::StatusOr<std::optional<Request>> next = parser.Next();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
  EXPECT_LT(probe.largest_bytes(), 4096u);
}

TEST(RespParserTest, TwoToThe31ArgumentsRejectedAndHugeCountsReserveLittle) {
  ExpectError("*2147483648\r\n", "Protocol error: invalid multibulk length");
  ExpectError("*1048577\r\n", "Protocol error: invalid multibulk length");
  // Redis' own INT_MAX bound holds even if args_max is raised past it.
  RespLimits limits;
  limits.args_max = size_t{1} << 40;
  ExpectError("*2147483648\r\n", "Protocol error: invalid multibulk length",
              limits);
  RespParser parser(limits);
  AllocationProbe probe;
  parser.Feed("*2147483647\r\n$1\r\na\r\n");
  absl::StatusOr<std::optional<Request>> next = parser.Next();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
  EXPECT_LT(probe.largest_bytes(), 64u << 10);
}

TEST(RespParserTest, ArgsMaxBoundary) {
  RespLimits limits;
  limits.args_max = 2;
  EXPECT_EQ(ParseEveryWay("*2\r\n$1\r\na\r\n$1\r\nb\r\n", limits, 1).requests,
            (std::vector<Request>{{"a", "b"}}));
  ExpectError("*3\r\n", "Protocol error: invalid multibulk length", limits);
  EXPECT_EQ(ParseEveryWay("a b\r\n", limits, 1).requests,
            (std::vector<Request>{{"a", "b"}}));
  ExpectError("a b c\r\n", "Protocol error: too many arguments in inline request",
              limits);
}

TEST(RespParserTest, BulkBytesMaxBoundary) {
  RespLimits limits;
  limits.bulk_bytes_max = 3;
  EXPECT_EQ(ParseEveryWay("*1\r\n$3\r\nabc\r\n", limits, 1).requests,
            (std::vector<Request>{{"abc"}}));
  ExpectError("*1\r\n$4\r\n", "Protocol error: invalid bulk length", limits);
  ExpectError("abcd\r\n", "Protocol error: too big inline request", limits);
}

TEST(RespParserTest, RequestBytesMaxBoundary) {
  RespLimits limits;
  limits.request_bytes_max = 5;
  EXPECT_EQ(ParseEveryWay("*2\r\n$3\r\nabc\r\n$2\r\nde\r\n", limits, 1).requests,
            (std::vector<Request>{{"abc", "de"}}));
  // Rejected when the length is declared, before its bytes arrive.
  ExpectError("*2\r\n$3\r\nabc\r\n$3\r\n", "Protocol error: too big request",
              limits);
  ExpectError("abc def\r\n", "Protocol error: too big inline request", limits);
}

TEST(RespParserTest, InlineBytesMaxBoundary) {
  RespLimits limits;
  limits.inline_bytes_max = 8;
  // The line, its '\r' included, may hold 8 bytes.
  EXPECT_EQ(ParseEveryWay("1234567\r\n", limits, 1).requests,
            (std::vector<Request>{{"1234567"}}));
  EXPECT_EQ(ParseEveryWay("12345678\n", limits, 1).requests,
            (std::vector<Request>{{"12345678"}}));
  ExpectError("12345678\r\n", "Protocol error: too big inline request", limits);
  // Without a newline: as soon as the 9th byte arrives.
  ExpectError("123456789", "Protocol error: too big inline request", limits);
  EXPECT_FALSE(ParseEveryWay("12345678", limits, 1).error.has_value());
}

TEST(RespParserTest, DefaultInlineLimitIs64KiB) {
  ExpectError(std::string(64u << 10, 'a') + "\r\n",
              "Protocol error: too big inline request");
  ExpectError(std::string((64u << 10) + 1, 'a'),
              "Protocol error: too big inline request");
}

// --- Properties ---

// Redis-style inline encoding of `arg` that must parse back to `arg`.
std::string QuoteInline(std::string_view arg, std::mt19937_64& rng) {
  bool plain = !arg.empty();
  for (char c : arg) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != ':' && c != '_') {
      plain = false;
    }
  }
  if (plain && rng() % 2 == 0) return std::string(arg);
  std::string out = "\"";
  for (char c : arg) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7f || rng() % 8 == 0) {
      absl::StrAppendFormat(&out, "\\x%02x", u);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string RandomArg(std::mt19937_64& rng) {
  static constexpr char kAlphabet[] = "ab:_\r\n\"'\\ \t*$-0123456789";
  std::string arg(rng() % 12, '\0');
  for (char& c : arg) {
    c = rng() % 3 == 0 ? static_cast<char>(rng())
                       : kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  }
  return arg;
}

TEST(RespParserPropertyTest, RandomRequestsRoundTripInBothForms) {
  const uint64_t seed = 20240601;
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 2000; ++round) {
    std::string stream;
    std::vector<Request> expected;
    const int requests = 1 + static_cast<int>(rng() % 4);
    for (int r = 0; r < requests; ++r) {
      Request request(1 + rng() % 5);
      for (std::string& arg : request) arg = RandomArg(rng);
      if (rng() % 2 == 0) {
        absl::StrAppend(&stream, "*", request.size(), "\r\n");
        for (const std::string& arg : request) {
          absl::StrAppend(&stream, "$", arg.size(), "\r\n", arg, "\r\n");
        }
      } else {
        for (const std::string& arg : request) {
          absl::StrAppend(&stream, QuoteInline(arg, rng), " ");
        }
        stream += rng() % 2 == 0 ? "\r\n" : "\n";
      }
      expected.push_back(std::move(request));
    }
    const Outcome outcome = ParseEveryWay(stream, RespLimits{}, seed + round);
    ASSERT_EQ(outcome.requests, expected)
        << "seed=" << seed << " round=" << round << " " << Describe(outcome);
    ASSERT_FALSE(outcome.error.has_value()) << "seed=" << seed;
  }
}

// Checks what the parser promises about anything it accepts.
void CheckWithinLimits(const Outcome& outcome, const RespLimits& limits,
                       uint64_t seed) {
  for (const Request& request : outcome.requests) {
    ASSERT_FALSE(request.empty()) << "seed=" << seed;
    ASSERT_LE(request.size(), limits.args_max) << "seed=" << seed;
    size_t request_bytes = 0;
    for (const std::string& arg : request) {
      ASSERT_LE(arg.size(), limits.bulk_bytes_max) << "seed=" << seed;
      request_bytes += arg.size();
    }
    ASSERT_LE(request_bytes, limits.request_bytes_max) << "seed=" << seed;
  }
  if (outcome.error) {
    ASSERT_EQ(outcome.error->code(), absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE(absl::StartsWith(outcome.error->message(), "Protocol error: "))
        << "seed=" << seed;
  }
}

RespLimits RandomLimits(std::mt19937_64& rng) {
  RespLimits limits;
  if (rng() % 2 == 0) {
    limits.args_max = 1 + rng() % 6;
    limits.bulk_bytes_max = rng() % 16;
    limits.inline_bytes_max = rng() % 24;
    limits.request_bytes_max = rng() % 40;
  }
  return limits;
}

std::string ValidStream(std::mt19937_64& rng) {
  std::string stream;
  const int requests = 1 + static_cast<int>(rng() % 4);
  for (int r = 0; r < requests; ++r) {
    const size_t args = 1 + rng() % 4;
    if (rng() % 3 == 0) {
      for (size_t a = 0; a < args; ++a) {
        stream += QuoteInline(RandomArg(rng), rng) + " ";
      }
      stream += "\r\n";
    } else {
      absl::StrAppend(&stream, "*", args, "\r\n");
      for (size_t a = 0; a < args; ++a) {
        const std::string arg = RandomArg(rng);
        absl::StrAppend(&stream, "$", arg.size(), "\r\n", arg, "\r\n");
      }
    }
  }
  return stream;
}

void Mutate(std::string& stream, std::mt19937_64& rng) {
  static constexpr char kInteresting[] = "*$\r\n-0123456789\"' \\x";
  const int mutations = 1 + static_cast<int>(rng() % 4);
  for (int m = 0; m < mutations; ++m) {
    const size_t at = stream.empty() ? 0 : rng() % stream.size();
    const char byte = rng() % 2 == 0
                          ? kInteresting[rng() % (sizeof(kInteresting) - 1)]
                          : static_cast<char>(rng());
    switch (rng() % 6) {
      case 0:
        if (!stream.empty()) stream[at] = byte;
        break;
      case 1:
        stream.insert(stream.begin() + at, byte);
        break;
      case 2:
        if (!stream.empty()) stream.erase(at, 1 + rng() % 4);
        break;
      case 3:
        stream.resize(at);  // Truncation.
        break;
      case 4:
        stream.insert(at, stream.substr(at, rng() % 16));  // Duplication.
        break;
      case 5:
        stream.insert(at, rng() % 2 == 0 ? "99999999999999" : "2147483648");
        break;
    }
  }
}

TEST(RespParserPropertyTest, RandomBytesNeverCrashOrDisagree) {
  const uint64_t seed = 77;
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 5000; ++round) {
    std::string stream(rng() % 64, '\0');
    for (char& c : stream) c = static_cast<char>(rng());
    if (rng() % 2 == 0 && !stream.empty()) stream[0] = '*';
    const RespLimits limits = RandomLimits(rng);
    const Outcome outcome = ParseEveryWay(stream, limits, seed * 1000 + round);
    CheckWithinLimits(outcome, limits, seed * 1000 + round);
  }
}

TEST(RespParserPropertyTest, MutatedValidStreamsNeverCrashOrDisagree) {
  const uint64_t seed = 4242;
  std::mt19937_64 rng(seed);
  size_t errors = 0;
  size_t accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string stream = ValidStream(rng);
    Mutate(stream, rng);
    const RespLimits limits = RandomLimits(rng);
    const uint64_t case_seed = seed * 100000 + round;
    const Outcome outcome = ParseEveryWay(stream, limits, case_seed);
    CheckWithinLimits(outcome, limits, case_seed);
    if (HasFailure()) {
      ADD_FAILURE() << "seed=" << seed << " round=" << round;
      return;
    }
    errors += outcome.error.has_value();
    accepted += outcome.requests.size();
  }
  // The corpus exercises both sides.
  EXPECT_GT(errors, 1000u);
  EXPECT_GT(accepted, 1000u);
}

// --- Reply encoders ---

TEST(RespEncodeTest, AllValues) {
  std::string out;
  AppendSimpleString(out, "OK");
  AppendError(out, "ERR unknown command");
  AppendError(out, "MOVED 0 127.0.0.1:7001");
  AppendInteger(out, 42);
  AppendInteger(out, -7);
  AppendInteger(out, INT64_MIN);
  AppendBulk(out, std::string_view("a\0\r\nb", 5));
  AppendBulk(out, "");
  AppendNull(out);
  AppendArrayHeader(out, 3);
  AppendArrayHeader(out, 0);
  EXPECT_EQ(out, Bytes("+OK\r\n"
                       "-ERR unknown command\r\n"
                       "-MOVED 0 127.0.0.1:7001\r\n"
                       ":42\r\n:-7\r\n:-9223372036854775808\r\n"
                       "$5\r\na\0\r\nb\r\n$0\r\n\r\n$-1\r\n*3\r\n*0\r\n"));
}

TEST(RespEncodeTest, LineValuesCannotBreakFraming) {
  std::string out;
  AppendSimpleString(out, "a\r\nb");
  AppendError(out, "ERR Protocol error: expected '\r'");
  EXPECT_EQ(out, "+a  b\r\n-ERR Protocol error: expected ' '\r\n");
}

TEST(RespEncodeTest, RepliesParseBackAsRequestsWhenArrays) {
  // An array of bulks is exactly a multibulk request: encode, then parse.
  std::string out;
  AppendArrayHeader(out, 3);
  AppendBulk(out, "SET");
  AppendBulk(out, "k");
  AppendBulk(out, std::string_view("\0", 1));
  ExpectRequests(out, {{"SET", "k", std::string("\0", 1)}});
}

}  // namespace
}  // namespace blizzard::node
