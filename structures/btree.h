// A B+tree of (score, member) keys on the arena: ordered, with linked
// leaves for range scans. Backs sorted sets (with a member -> score hash
// map beside it) and serves as the priority queue (pop min / max).
// Each key is an element block {f64 score, u32 length, member}; inner
// nodes own copies of their separator keys. Deletion frees a leaf when it
// empties and collapses a root with one child, but never merges or
// borrows between non-empty nodes (as PostgreSQL's B-trees): simple,
// and every bound stays valid. Layout: structures/FORMAT.md ("B+tree").
#ifndef BLIZZARD_STRUCTURES_BTREE_H_
#define BLIZZARD_STRUCTURES_BTREE_H_

#include <cstdint>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "structures/arena.h"

namespace blizzard::structures {

namespace btree_format {
inline constexpr uint32_t kSlots = 59;
inline constexpr uint32_t kLeafMax = kSlots;  // Keys per leaf.
inline constexpr uint32_t kInnerMax = 30;     // Children per inner node.
struct Header {
  uint64_t root;
  uint64_t count;
  uint64_t first_leaf;
  uint64_t last_leaf;
  uint64_t height;  // 1: the root is a leaf.
};
// A leaf: slots[0, n) are keys. An inner node: slots[0, n) children,
// slots[kInnerMax, kInnerMax + n - 1) separators; child i holds the keys
// k with sep[i-1] <= k < sep[i].
struct Node {
  uint32_t leaf;
  uint32_t n;
  uint64_t prev;  // Leaves only: the leaf chain.
  uint64_t next;
  uint64_t slots[kSlots];
};
static_assert(sizeof(Header) == 40 && sizeof(Node) == 496);
}  // namespace btree_format

struct ZKey {
  double score;
  std::string_view member;
};

class BTree {
 public:
  static uint64_t Create(Arena& arena);  // 0: transaction failed.
  BTree(Arena& arena, uint64_t header);

  uint64_t size() const { return h_.count; }
  // false if the key is already there.
  bool Insert(ZKey key);
  bool Erase(ZKey key);
  // Keys in order from the first key >= `from` (or > when `exclusive`
  // compares scores only: a key with score == from.score is skipped).
  // `fn` returns false to stop.
  void ScanFrom(double min_score, bool exclusive, const std::function<bool(ZKey)>& fn) const;
  // Keys in order from rank `rank` (0 = smallest); fn returns false to stop.
  void ScanRank(uint64_t rank, const std::function<bool(ZKey)>& fn) const;
  // Keys in reverse order from the largest.
  void ScanBack(const std::function<bool(ZKey)>& fn) const;
  void Destroy();
  absl::Status Check(const std::function<absl::Status(uint64_t block)>& own) const;

 private:
  // (inner node, child index) from the root down. Inline for 8 levels
  // (a full tree of 8 levels holds 30^7 * 59 keys); deeper ones allocate.
  using Path = absl::InlinedVector<std::pair<uint64_t, uint32_t>, 8>;
  ZKey KeyAt(uint64_t element) const;
  uint64_t NewElement(ZKey key);
  uint64_t NewNode(bool leaf);
  int Compare(ZKey a, uint64_t element) const;
  uint32_t ChildIndex(const btree_format::Node& node, ZKey key) const;
  // The leaf where `key` belongs, recording (inner node, child index) on
  // the way down.
  uint64_t Descend(ZKey key, Path* path) const;
  // The first slot of `leaf` whose key is >= `key`.
  uint32_t LowerBound(const btree_format::Node& leaf, ZKey key) const;
  void InsertInParent(Path& path, uint64_t sep, uint64_t right);
  void RemoveFromParent(Path& path);
  absl::Status CheckNode(uint64_t node, uint64_t depth, const uint64_t* lo, const uint64_t* hi,
                         std::vector<uint64_t>& leaves, uint64_t& keys,
                         const std::function<absl::Status(uint64_t)>& own) const;
  btree_format::Node LoadNode(uint64_t at) const { return arena_.Load<btree_format::Node>(at); }
  void Save() { arena_.Put(at_, h_); }

  Arena& arena_;
  uint64_t at_;
  btree_format::Header h_;
};

}  // namespace blizzard::structures

#endif  // BLIZZARD_STRUCTURES_BTREE_H_
