#include "structures/test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "structures/keyspace_format.h"
#include "xxhash.h"

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

namespace {

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) absl::StrAppend(&out, i ? "," : "", items[i]);
  return out;
}

std::string ZText(const std::vector<std::pair<std::string, double>>& items) {
  std::vector<std::string> parts;
  for (const auto& [m, s] : items) parts.push_back(absl::StrCat(m, "=", FormatScore(s)));
  return absl::StrCat("zset:{", Join(parts), "}");
}

const char kWrongType[] = "WRONGTYPE Operation against a key holding the wrong kind of value";

OpResult Int(int64_t n) { return OpResult{OpResult::Kind::kInteger, n, "", {}}; }
OpResult Err(const char* text) { return OpResult{OpResult::Kind::kError, 0, text, {}}; }

}  // namespace

std::map<std::string, std::string> Dump(const KvStore& store) {
  std::map<std::string, std::string> out;
  store.ForEachKey([&](std::string_view key, ValueType type) {
    std::string text;
    switch (type) {
      case ValueType::kString:
        text = absl::StrCat("string:", *store.Get(key));
        break;
      case ValueType::kList:
        text = absl::StrCat("list:[", Join(store.ListRange(key, 0, -1)), "]");
        break;
      case ValueType::kSet: {
        std::vector<std::string> m = store.SetMembers(key);
        std::sort(m.begin(), m.end());
        text = absl::StrCat("set:{", Join(m), "}");
        break;
      }
      case ValueType::kZSet:
        text = ZText(store.ZRange(key, 0, -1));
        break;
      case ValueType::kNone:
        ADD_FAILURE() << "key of type none";
    }
    EXPECT_TRUE(out.emplace(std::string(key), text).second) << "duplicate key " << key;
  });
  return out;
}

std::map<std::string, std::string> Model::contents() const {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : map_) {
    if (v.type == ValueType::kString) out.emplace(k, v.str);
  }
  return out;
}

std::map<std::string, std::string> Model::Dump() const {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : map_) {
    switch (v.type) {
      case ValueType::kString:
        out[k] = absl::StrCat("string:", v.str);
        break;
      case ValueType::kList:
        out[k] = absl::StrCat("list:[", Join({v.list.begin(), v.list.end()}), "]");
        break;
      case ValueType::kSet:
        out[k] = absl::StrCat("set:{", Join({v.set.begin(), v.set.end()}), "}");
        break;
      case ValueType::kZSet: {
        std::vector<std::pair<std::string, double>> items(v.zset.begin(), v.zset.end());
        std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
          return a.second < b.second || (a.second == b.second && a.first < b.first);
        });
        out[k] = ZText(items);
        break;
      }
      case ValueType::kNone:
        break;
    }
  }
  return out;
}

std::vector<OpResult> Model::Apply(absl::Span<const Op> ops) {
  std::vector<OpResult> results;
  for (const Op& op : ops) results.push_back(ApplyOne(op));
  return results;
}

OpResult Model::ApplyOne(const Op& op) {
  OpResult r;
  auto typed = [&](ValueType) -> Value* {  // nullptr: absent; else the value
    auto it = map_.find(op.args[0]);
    return it == map_.end() ? nullptr : &it->second;
  };
  auto drop_if_empty = [&](const Value& v) {
    if (v.list.empty() && v.set.empty() && v.zset.empty()) map_.erase(op.args[0]);
  };
  switch (op.code) {
    case OpCode::kSet:
      map_[op.args[0]] = Value{ValueType::kString, op.args[1], {}, {}, {}};
      return r;
    case OpCode::kMSet:
      for (size_t i = 0; i < op.args.size(); i += 2) {
        map_[op.args[i]] = Value{ValueType::kString, op.args[i + 1], {}, {}, {}};
      }
      return r;
    case OpCode::kDel:
      r.kind = OpResult::Kind::kInteger;
      for (const std::string& k : op.args) r.integer += static_cast<int64_t>(map_.erase(k));
      return r;
    case OpCode::kIncrBy: {
      int64_t value = 0;
      auto it = map_.find(op.args[0]);
      if (it != map_.end()) {
        if (it->second.type != ValueType::kString) return Err(kWrongType);
        // Redis accepts exactly the canonical decimal form of an int64.
        errno = 0;
        char* end = nullptr;
        const std::string& s = it->second.str;
        const long long parsed = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || errno != 0 || end != s.c_str() + s.size() ||
            absl::StrCat(parsed) != s) {
          return Err("ERR value is not an integer or out of range");
        }
        value = parsed;
      }
      const int64_t d = op.delta;
      if ((d < 0 && value < 0 && d < std::numeric_limits<int64_t>::min() - value) ||
          (d > 0 && value > 0 && d > std::numeric_limits<int64_t>::max() - value)) {
        return Err("ERR increment or decrement would overflow");
      }
      value += d;
      map_[op.args[0]] = Value{ValueType::kString, absl::StrCat(value), {}, {}, {}};
      return Int(value);
    }
    case OpCode::kAppend: {
      Value* v = typed(ValueType::kString);
      if (v != nullptr && v->type != ValueType::kString) return Err(kWrongType);
      const size_t old = v == nullptr ? 0 : v->str.size();
      if (old + op.args[1].size() > kValueBytesMax) {
        return Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
      }
      Value& nv = map_[op.args[0]];
      nv.type = ValueType::kString;
      nv.str += op.args[1];
      return Int(static_cast<int64_t>(nv.str.size()));
    }
    case OpCode::kLPush:
    case OpCode::kRPush: {
      Value* v = typed(ValueType::kList);
      if (v != nullptr && v->type != ValueType::kList) return Err(kWrongType);
      Value& nv = map_[op.args[0]];
      nv.type = ValueType::kList;
      for (size_t i = 1; i < op.args.size(); ++i) {
        if (op.code == OpCode::kLPush) {
          nv.list.push_front(op.args[i]);
        } else {
          nv.list.push_back(op.args[i]);
        }
      }
      return Int(static_cast<int64_t>(nv.list.size()));
    }
    case OpCode::kLPop:
    case OpCode::kRPop: {
      Value* v = typed(ValueType::kList);
      if (v != nullptr && v->type != ValueType::kList) return Err(kWrongType);
      if (v == nullptr) {
        r.kind = op.delta == kNoCount ? OpResult::Kind::kNil : OpResult::Kind::kNilArray;
        return r;
      }
      const uint64_t n = op.delta == kNoCount ? 1 : static_cast<uint64_t>(op.delta);
      r.kind = OpResult::Kind::kArray;
      for (uint64_t i = 0; i < n && !v->list.empty(); ++i) {
        if (op.code == OpCode::kLPop) {
          r.items.push_back(v->list.front());
          v->list.pop_front();
        } else {
          r.items.push_back(v->list.back());
          v->list.pop_back();
        }
      }
      drop_if_empty(*v);
      if (op.delta == kNoCount) return OpResult{OpResult::Kind::kBulk, 0, r.items[0], {}};
      return r;
    }
    case OpCode::kSAdd:
    case OpCode::kSRem: {
      Value* v = typed(ValueType::kSet);
      if (v != nullptr && v->type != ValueType::kSet) return Err(kWrongType);
      if (v == nullptr && op.code == OpCode::kSRem) return Int(0);
      Value& nv = map_[op.args[0]];
      nv.type = ValueType::kSet;
      int64_t n = 0;
      for (size_t i = 1; i < op.args.size(); ++i) {
        n += op.code == OpCode::kSAdd ? nv.set.insert(op.args[i]).second
                                      : static_cast<int64_t>(nv.set.erase(op.args[i]));
      }
      drop_if_empty(nv);
      return Int(n);
    }
    case OpCode::kZAdd:
    case OpCode::kZRem: {
      Value* v = typed(ValueType::kZSet);
      if (v != nullptr && v->type != ValueType::kZSet) return Err(kWrongType);
      if (v == nullptr && op.code == OpCode::kZRem) return Int(0);
      Value& nv = map_[op.args[0]];
      nv.type = ValueType::kZSet;
      int64_t n = 0;
      for (size_t i = 1; i < op.args.size(); ++i) {
        if (op.code == OpCode::kZAdd) {
          auto [it, added] = nv.zset.emplace(op.args[i], op.scores[i - 1]);
          if (added) {
            n++;
          } else if (it->second != op.scores[i - 1]) {
            it->second = op.scores[i - 1];
          }
        } else {
          n += static_cast<int64_t>(nv.zset.erase(op.args[i]));
        }
      }
      drop_if_empty(nv);
      return Int(n);
    }
    case OpCode::kZPopMin:
    case OpCode::kZPopMax: {
      Value* v = typed(ValueType::kZSet);
      if (v != nullptr && v->type != ValueType::kZSet) return Err(kWrongType);
      r.kind = OpResult::Kind::kArray;
      if (v == nullptr) return r;
      const uint64_t n = op.delta == kNoCount ? 1 : static_cast<uint64_t>(op.delta);
      for (uint64_t i = 0; i < n && !v->zset.empty(); ++i) {
        auto best = v->zset.begin();
        for (auto it = v->zset.begin(); it != v->zset.end(); ++it) {
          const bool better =
              op.code == OpCode::kZPopMin
                  ? (it->second < best->second ||
                     (it->second == best->second && it->first < best->first))
                  : (it->second > best->second ||
                     (it->second == best->second && it->first > best->first));
          if (better) best = it;
        }
        r.items.push_back(best->first);
        r.items.push_back(FormatScore(best->second));
        v->zset.erase(best);
      }
      drop_if_empty(*v);
      return r;
    }
  }
  ADD_FAILURE() << "unknown op";
  return r;
}

uint64_t Model::StateHash() const {
  namespace kf = keyspace_format;
  uint64_t sum = 0;
  for (const auto& [k, v] : map_) {
    uint64_t digest = 0;
    switch (v.type) {
      case ValueType::kString:
        digest = XXH3_64bits_withSeed(v.str.data(), v.str.size(), kf::kValueSeed);
        break;
      case ValueType::kList: {
        int64_t seq = 0;  // Normalized: the front is position 0.
        for (const std::string& e : v.list) {
          digest = kf::AddMod(digest, kf::MulMod(kf::ElementHash(e), kf::PowG(seq++)));
        }
        break;
      }
      case ValueType::kSet:
        for (const std::string& m : v.set) digest += kf::MemberHash(m);
        break;
      case ValueType::kZSet:
        for (const auto& [m, s] : v.zset) digest += kf::ScoredHash(m, s);
        break;
      case ValueType::kNone:
        break;
    }
    sum += kf::KeyTerm(k, v.type, digest);
  }
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

Op RandomTypedOp(std::mt19937_64& rng, const RandomOpOptions& o) {
  Op op;
  // Few keys per type (and some shared with strings): WRONGTYPE happens.
  const std::string key = absl::StrCat(rng() % 4 == 0 ? "k" : "t", rng() % (o.keys / 4 + 1));
  const uint64_t what = rng() % 10;
  const OpCode codes[] = {OpCode::kLPush, OpCode::kRPush, OpCode::kLPop,   OpCode::kRPop,
                          OpCode::kSAdd,  OpCode::kSRem,  OpCode::kZAdd,   OpCode::kZRem,
                          OpCode::kZPopMin, OpCode::kZPopMax};
  op.code = codes[what];
  op.args = {key};
  switch (op.code) {
    case OpCode::kLPop:
    case OpCode::kRPop:
    case OpCode::kZPopMin:
    case OpCode::kZPopMax:
      op.delta = rng() % 2 ? kNoCount : static_cast<int64_t>(rng() % 4);
      break;
    default:
      for (uint64_t n = 1 + rng() % 4; n > 0; --n) {
        op.args.push_back(absl::StrCat("m", rng() % 12));
        if (op.code == OpCode::kZAdd) {
          op.scores.push_back(rng() % 8 == 0 ? (rng() % 2 ? HUGE_VAL : -HUGE_VAL)
                                             : static_cast<double>(rng() % 9) / 2 - 2);
        }
      }
  }
  return op;
}

Op RandomOp(std::mt19937_64& rng, const RandomOpOptions& o) {
  if (o.typed && rng() % 2 == 0) return RandomTypedOp(rng, o);
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
