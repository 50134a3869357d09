#include "bench/workload.h"

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace blizzard::bench {
namespace {

// Splits a stream of RESP multibulk commands into their arguments (a tiny
// request parser for the test: the commands are well-formed by design).
std::vector<std::vector<std::string>> Commands(std::string_view s) {
  std::vector<std::vector<std::string>> out;
  size_t pos = 0;
  auto line = [&] {
    const size_t end = s.find("\r\n", pos);
    std::string l(s.substr(pos, end - pos));
    pos = end + 2;
    return l;
  };
  while (pos < s.size()) {
    std::string header = line();
    EXPECT_EQ(header[0], '*');
    const int n = std::stoi(header.substr(1));
    std::vector<std::string> args;
    for (int i = 0; i < n; ++i) {
      std::string len = line();
      EXPECT_EQ(len[0], '$');
      const size_t bytes = std::stoul(len.substr(1));
      args.emplace_back(s.substr(pos, bytes));
      pos += bytes;
      EXPECT_EQ(s.substr(pos, 2), "\r\n");
      pos += 2;
    }
    out.push_back(std::move(args));
  }
  return out;
}

std::string Generate(const WorkloadOptions& o, uint64_t stream, int n,
                     std::vector<OpKind>* kinds = nullptr) {
  ValuePool pool(o.value_bytes, o.seed);
  OpGenerator g(o, &pool, stream);
  std::string out;
  for (int i = 0; i < n; ++i) {
    const OpKind k = g.Append(out);
    if (kinds) kinds->push_back(k);
  }
  return out;
}

TEST(Workload, SameSeedSameBytes) {
  for (int w = 0; w < kWorkloadKinds; ++w) {
    WorkloadOptions o;
    o.kind = static_cast<WorkloadKind>(w);
    o.distribution = w % 2 ? Distribution::kZipf : Distribution::kUniform;
    o.value_bytes = 100;
    o.seed = 5;
    SCOPED_TRACE(WorkloadName(o.kind));
    EXPECT_EQ(Generate(o, 3, 500), Generate(o, 3, 500));
    EXPECT_NE(Generate(o, 3, 500), Generate(o, 4, 500));
    WorkloadOptions other = o;
    other.seed = 6;
    EXPECT_NE(Generate(o, 3, 500), Generate(other, 3, 500));
  }
}

TEST(Workload, SetCommandsHaveExactSizes) {
  WorkloadOptions o;
  o.keys = 1000;
  for (size_t value_bytes : {size_t{16}, size_t{128}, size_t{1024}, size_t{3}}) {
    o.value_bytes = value_bytes;
    for (const auto& c : Commands(Generate(o, 0, 200))) {
      ASSERT_EQ(c.size(), 3u);
      EXPECT_EQ(c[0], "SET");
      EXPECT_EQ(c[1].size(), 14u);  // "key:" + 10 digits.
      EXPECT_EQ(c[1].substr(0, 4), "key:");
      EXPECT_LT(std::stoull(c[1].substr(4)), 1000u);
      EXPECT_EQ(c[2].size(), value_bytes);
    }
  }
}

TEST(Workload, GetSetIsHalfAndHalf) {
  WorkloadOptions o;
  o.kind = WorkloadKind::kGetSet;
  std::vector<OpKind> kinds;
  const auto commands = Commands(Generate(o, 0, 10000, &kinds));
  int gets = 0;
  for (size_t i = 0; i < commands.size(); ++i) {
    const bool get = commands[i][0] == "GET";
    EXPECT_EQ(kinds[i], get ? OpKind::kGet : OpKind::kSet);
    EXPECT_EQ(commands[i].size(), get ? 2u : 3u);
    gets += get;
  }
  EXPECT_GT(gets, 4800);
  EXPECT_LT(gets, 5200);
}

TEST(Workload, ZaddMembersAreUniqueAndSized) {
  WorkloadOptions o;
  o.kind = WorkloadKind::kZadd;
  o.value_bytes = 64;
  std::map<std::string, int> members;
  for (uint64_t stream : {0, 1}) {
    for (const auto& c : Commands(Generate(o, stream, 1000))) {
      ASSERT_EQ(c.size(), 4u);
      EXPECT_EQ(c[0], "ZADD");
      EXPECT_EQ(c[1].substr(0, 5), "zset:");
      EXPECT_LT(std::stoull(c[2]), 1ull << 31);
      EXPECT_EQ(c[3].size(), 64u);
      ++members[c[3]];
    }
  }
  EXPECT_EQ(members.size(), 2000u);
  // Another seed (a later run on the same cluster): other members again.
  o.seed = 2;
  for (uint64_t stream : {0, 1}) {
    for (const auto& c : Commands(Generate(o, stream, 1000))) ++members[c[3]];
  }
  EXPECT_EQ(members.size(), 4000u);
}

TEST(Workload, ListAlternatesPushAndPop) {
  WorkloadOptions o;
  o.kind = WorkloadKind::kList;
  const auto commands = Commands(Generate(o, 0, 100));
  for (size_t i = 0; i < commands.size(); ++i) {
    EXPECT_EQ(commands[i][0], i % 2 == 0 ? "LPUSH" : "RPOP");
    EXPECT_EQ(commands[i][1].substr(0, 5), "list:");
  }
}

TEST(Workload, SaddIsAFollowerGraph) {
  WorkloadOptions o;
  o.kind = WorkloadKind::kSadd;
  o.keys = 500;
  for (const auto& c : Commands(Generate(o, 0, 200))) {
    ASSERT_EQ(c.size(), 3u);
    EXPECT_EQ(c[0], "SADD");
    EXPECT_EQ(c[1].substr(0, 5), "user:");
    EXPECT_EQ(c[2].size(), 10u);
    EXPECT_LT(std::stoull(c[2]), 500u);
  }
}

TEST(Workload, ZipfKeysAreSkewed) {
  WorkloadOptions o;
  o.keys = 100000;
  o.distribution = Distribution::kZipf;
  o.zipf_s = 0.99;
  ValuePool pool(o.value_bytes, o.seed);
  OpGenerator g(o, &pool, 0);
  int hottest = 0;
  for (int i = 0; i < 20000; ++i) hottest += g.DrawKey() == 0;
  // P(rank 0) = 1/H(1e5, 0.99) ~ 0.08.
  EXPECT_GT(hottest, 1200);
  EXPECT_LT(hottest, 2000);
}

TEST(Workload, Parsing) {
  EXPECT_EQ(*ParseWorkload("getset"), WorkloadKind::kGetSet);
  EXPECT_FALSE(ParseWorkload("mset").ok());
  EXPECT_EQ(*ParseDistribution("zipf"), Distribution::kZipf);
  EXPECT_FALSE(ParseDistribution("normal").ok());
  EXPECT_EQ(*ParseByteSize("16"), 16u);
  EXPECT_EQ(*ParseByteSize("1K"), 1024u);
  EXPECT_EQ(*ParseByteSize("1KiB"), 1024u);
  EXPECT_EQ(*ParseByteSize("2m"), 2u << 20);
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_FALSE(ParseByteSize("x").ok());
  EXPECT_FALSE(ParseByteSize("1G").ok());
  EXPECT_FALSE(ParseByteSize("5M").ok());  // Over kValueBytesMax.
}

TEST(Workload, Validation) {
  WorkloadOptions o;
  EXPECT_TRUE(ValidateWorkload(o).ok());
  o.keys = 0;
  EXPECT_FALSE(ValidateWorkload(o).ok());
  o.keys = kKeysMax + 1;
  EXPECT_FALSE(ValidateWorkload(o).ok());
  o.keys = 10;
  o.value_bytes = 0;
  EXPECT_FALSE(ValidateWorkload(o).ok());
  o.value_bytes = 16;
  o.distribution = Distribution::kZipf;
  o.zipf_s = 0;
  EXPECT_FALSE(ValidateWorkload(o).ok());
}

}  // namespace
}  // namespace blizzard::bench
