// Test helpers for //structures: a scratch directory in /dev/shm, a
// volatile reference model of the store (Redis semantics, written
// independently of kv_store.cc), and seeded random operations.
#ifndef BLIZZARD_STRUCTURES_TEST_UTIL_H_
#define BLIZZARD_STRUCTURES_TEST_UTIL_H_

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"
#include "structures/kv_store.h"
#include "structures/op.h"

namespace blizzard::structures::testing {

// /dev/shm/blizzard_structures_<pid>_<name>, removed with its contents.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string Path(const std::string& file) const;

 private:
  std::string dir_;
};

// Whole-file read and write, for tests that damage pool files.
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& bytes);

// The store's string keys and values, by walking it.
std::map<std::string, std::string> Contents(const KvStore& store);
// Every key of any type as canonical text ("string:<v>", "list:[a,b]",
// "set:{a,b}" sorted, "zset:{a=1,b=2.5}" in score order), through the
// store's public reads.
std::map<std::string, std::string> Dump(const KvStore& store);

// What the store must hold: std containers and Redis's documented
// semantics, written independently of the store.
class Model {
 public:
  struct Value {
    ValueType type = ValueType::kNone;
    std::string str;
    std::deque<std::string> list;
    std::set<std::string> set;
    std::map<std::string, double> zset;  // member -> score
  };
  std::vector<OpResult> Apply(absl::Span<const Op> ops);
  // Strings only (as Contents()).
  std::map<std::string, std::string> contents() const;
  std::map<std::string, std::string> Dump() const;
  const std::map<std::string, Value>& values() const { return map_; }
  // The state hash as FORMAT.md defines it.
  uint64_t StateHash() const;

 private:
  OpResult ApplyOne(const Op& op);
  std::map<std::string, Value> map_;
};

struct RandomOpOptions {
  uint64_t keys = 64;             // Key space: "k0".."k<keys-1>" (+ a few odd keys).
  size_t value_bytes_max = 64;    // Typical values.
  size_t big_value_bytes = 8192;  // Occasional big values (relocations).
  size_t ops_max = 8;             // Ops per batch: 0..ops_max.
  bool typed = true;              // Also list/set/zset ops.
};

Op RandomOp(std::mt19937_64& rng, const RandomOpOptions& options);
std::vector<Op> RandomBatch(std::mt19937_64& rng, const RandomOpOptions& options);

}  // namespace blizzard::structures::testing

#endif  // BLIZZARD_STRUCTURES_TEST_UTIL_H_
