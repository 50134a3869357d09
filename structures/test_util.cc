#include "structures/test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "structures/kv_format.h"

namespace blizzard::structures::testing {

ScratchDir::ScratchDir(const std::string& name)
    : dir_(absl::StrCat("/dev/shm/blizzard_structures_", getpid(), "_", name)) {
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string ScratchDir::Path(const std::string& file) const { return absl::StrCat(dir_, "/", file); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_TRUE(out.good()) << "cannot write " << path;
}

std::map<std::string, std::string> Contents(const KvStore& store) {
  std::map<std::string, std::string> out;
  store.ForEach([&out](std::string_view k, std::string_view v) {
    EXPECT_TRUE(out.emplace(std::string(k), std::string(v)).second) << "duplicate key " << k;
  });
  return out;
}

std::vector<OpResult> Model::Apply(absl::Span<const Op> ops) {
  std::vector<OpResult> results;
  for (const Op& op : ops) results.push_back(ApplyOne(op));
  return results;
}

OpResult Model::ApplyOne(const Op& op) {
  OpResult r;
  switch (op.code) {
    case OpCode::kSet:
      map_[op.args[0]] = op.args[1];
      return r;
    case OpCode::kMSet:
      for (size_t i = 0; i < op.args.size(); i += 2) map_[op.args[i]] = op.args[i + 1];
      return r;
    case OpCode::kDel:
      r.kind = OpResult::Kind::kInteger;
      for (const std::string& k : op.args) r.integer += static_cast<int64_t>(map_.erase(k));
      return r;
    case OpCode::kIncrBy: {
      int64_t value = 0;
      auto it = map_.find(op.args[0]);
      if (it != map_.end()) {
        // Redis accepts exactly the canonical decimal form of an int64.
        errno = 0;
        char* end = nullptr;
        const std::string& s = it->second;
        const long long parsed = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || errno != 0 || end != s.c_str() + s.size() ||
            absl::StrCat(parsed) != s) {
          return OpResult{OpResult::Kind::kError, 0,
                          "ERR value is not an integer or out of range"};
        }
        value = parsed;
      }
      const int64_t d = op.delta;
      if ((d < 0 && value < 0 && d < std::numeric_limits<int64_t>::min() - value) ||
          (d > 0 && value > 0 && d > std::numeric_limits<int64_t>::max() - value)) {
        return OpResult{OpResult::Kind::kError, 0, "ERR increment or decrement would overflow"};
      }
      value += d;
      map_[op.args[0]] = absl::StrCat(value);
      return OpResult{OpResult::Kind::kInteger, value, ""};
    }
    case OpCode::kAppend: {
      std::string& v = map_[op.args[0]];
      if (v.size() + op.args[1].size() > kValueBytesMax) {
        return OpResult{OpResult::Kind::kError, 0,
                        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"};
      }
      v += op.args[1];
      return OpResult{OpResult::Kind::kInteger, static_cast<int64_t>(v.size()), ""};
    }
  }
  ADD_FAILURE() << "unknown op";
  return r;
}

uint64_t Model::StateHash() const {
  uint64_t sum = 0;
  for (const auto& [k, v] : map_) sum += kv_format::PairHash(k, v);
  return sum;
}

namespace {

std::string RandomKey(std::mt19937_64& rng, const RandomOpOptions& o) {
  const uint64_t pick = rng() % 64;
  if (pick == 0) return "";                          // The empty key is legal.
  if (pick == 1) return std::string("bin\0\xff", 5);  // Binary-safe keys.
  return absl::StrCat("k", rng() % o.keys);
}

std::string RandomValue(std::mt19937_64& rng, const RandomOpOptions& o) {
  const uint64_t pick = rng() % 32;
  if (pick == 0) return "";
  if (pick < 6) {
    // Integers (INCRBY succeeds), near-integers (it fails).
    static const char* kOdd[] = {"0", "-0", "007", "+5", " 5", "9223372036854775807",
                                 "-9223372036854775808", "9223372036854775808", "1.5"};
    if (pick == 1) return kOdd[rng() % (sizeof(kOdd) / sizeof(kOdd[0]))];
    return absl::StrCat(static_cast<int64_t>(rng() % 2001) - 1000);
  }
  const size_t n = pick == 6 ? o.big_value_bytes / 2 + rng() % (o.big_value_bytes / 2 + 1)
                             : rng() % (o.value_bytes_max + 1);
  std::string v(n, '\0');
  for (char& c : v) c = static_cast<char>('a' + rng() % 26);
  return v;
}

int64_t RandomDelta(std::mt19937_64& rng) {
  switch (rng() % 8) {
    case 0:
      return std::numeric_limits<int64_t>::max() - static_cast<int64_t>(rng() % 3);
    case 1:
      return std::numeric_limits<int64_t>::min() + static_cast<int64_t>(rng() % 3);
    default:
      return static_cast<int64_t>(rng() % 201) - 100;
  }
}

}  // namespace

Op RandomOp(std::mt19937_64& rng, const RandomOpOptions& o) {
  Op op;
  switch (rng() % 10) {
    case 0:
    case 1:
    case 2:
      op.code = OpCode::kSet;
      op.args = {RandomKey(rng, o), RandomValue(rng, o)};
      break;
    case 3:
    case 4:
      op.code = OpCode::kDel;
      for (uint64_t n = 1 + rng() % 3; n > 0; --n) op.args.push_back(RandomKey(rng, o));
      break;
    case 5:
    case 6:
      op.code = OpCode::kIncrBy;
      op.args = {RandomKey(rng, o)};
      op.delta = RandomDelta(rng);
      break;
    case 7:
    case 8:
      op.code = OpCode::kAppend;
      op.args = {RandomKey(rng, o), RandomValue(rng, o)};
      break;
    default:
      op.code = OpCode::kMSet;
      for (uint64_t n = 1 + rng() % 4; n > 0; --n) {
        op.args.push_back(RandomKey(rng, o));
        op.args.push_back(RandomValue(rng, o));
      }
      break;
  }
  return op;
}

std::vector<Op> RandomBatch(std::mt19937_64& rng, const RandomOpOptions& o) {
  std::vector<Op> ops(rng() % (o.ops_max + 1));
  for (Op& op : ops) op = RandomOp(rng, o);
  return ops;
}

}  // namespace blizzard::structures::testing
