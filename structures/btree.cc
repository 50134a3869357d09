#include "structures/btree.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"

namespace blizzard::structures {
namespace {

using btree_format::Header;
using btree_format::kInnerMax;
using btree_format::kLeafMax;
using btree_format::Node;

constexpr uint64_t kElementHeaderBytes = 12;  // f64 score, u32 length.

absl::Status Damaged(const std::string& why) {
  return absl::DataLossError(absl::StrCat("b+tree: ", why));
}

int CompareKeys(ZKey a, ZKey b) {
  if (a.score < b.score) return -1;
  if (a.score > b.score) return 1;
  const int c = a.member.compare(b.member);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

}  // namespace

uint64_t BTree::Create(Arena& arena) {
  const uint64_t at = arena.Alloc(sizeof(Header));
  const uint64_t root = arena.AllocZeroed(sizeof(Node));
  if (at == 0 || root == 0) return 0;
  arena.Put<uint32_t>(root, 1);  // A leaf.
  arena.Put(at, Header{root, 0, root, root, 1});
  return at;
}

BTree::BTree(Arena& arena, uint64_t header)
    : arena_(arena), at_(header), h_(arena.Load<Header>(header)) {}

ZKey BTree::KeyAt(uint64_t e) const {
  return ZKey{arena_.Load<double>(e),
              arena_.Bytes(e + kElementHeaderBytes, arena_.Load<uint32_t>(e + 8))};
}

uint64_t BTree::NewElement(ZKey key) {
  const uint64_t e = arena_.Alloc(kElementHeaderBytes + key.member.size());
  if (e == 0) return 0;
  arena_.Put<double>(e, key.score);
  arena_.Put<uint32_t>(e + 8, static_cast<uint32_t>(key.member.size()));
  arena_.Write(e + kElementHeaderBytes, key.member.data(), key.member.size());
  return e;
}

uint64_t BTree::NewNode(bool leaf) {
  const uint64_t at = arena_.AllocZeroed(sizeof(Node));
  if (at != 0 && leaf) arena_.Put<uint32_t>(at, 1);
  return at;
}

int BTree::Compare(ZKey a, uint64_t element) const { return CompareKeys(a, KeyAt(element)); }

uint32_t BTree::ChildIndex(const Node& node, ZKey key) const {
  // The number of separators <= key.
  uint32_t lo = 0, hi = node.n - 1;
  while (lo < hi) {
    const uint32_t mid = (lo + hi) / 2;
    if (Compare(key, node.slots[kInnerMax + mid]) >= 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

uint64_t BTree::Descend(ZKey key, Path* path) const {
  uint64_t c = h_.root;
  for (uint64_t level = 1; level < h_.height; ++level) {
    const Node node = LoadNode(c);
    const uint32_t i = ChildIndex(node, key);
    path->emplace_back(c, i);
    c = node.slots[i];
  }
  return c;
}

uint32_t BTree::LowerBound(const Node& leaf, ZKey key) const {
  // Binary search: each comparison loads an element block elsewhere in the
  // arena (a likely cache miss), so ~6 of them instead of up to 59.
  uint32_t lo = 0, hi = leaf.n;
  while (lo < hi) {
    const uint32_t mid = (lo + hi) / 2;
    if (Compare(key, leaf.slots[mid]) > 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

bool BTree::Insert(ZKey key) {
  Path path;
  const uint64_t c = Descend(key, &path);
  const Node leaf = LoadNode(c);
  const uint32_t pos = LowerBound(leaf, key);
  if (pos < leaf.n && Compare(key, leaf.slots[pos]) == 0) return false;
  const uint64_t e = NewElement(key);
  if (e == 0) return false;
  h_.count++;
  if (leaf.n < kLeafMax) {
    Node now = leaf;
    std::memmove(&now.slots[pos + 1], &now.slots[pos], 8 * (leaf.n - pos));
    now.slots[pos] = e;
    now.n++;
    arena_.PutChanged(c, leaf, now);
    Save();
    return arena_.ok();
  }
  // Split: the lower half stays, the upper half moves to a new right leaf.
  uint64_t all[kLeafMax + 1];
  std::memcpy(all, leaf.slots, 8 * pos);
  all[pos] = e;
  std::memcpy(all + pos + 1, leaf.slots + pos, 8 * (leaf.n - pos));
  const uint32_t keep = (kLeafMax + 1) / 2;
  const uint64_t right = NewNode(true);
  if (right == 0) return false;
  Node l = leaf, r = LoadNode(right);
  l.n = keep;
  std::memcpy(l.slots, all, 8 * keep);
  std::memset(l.slots + keep, 0, 8 * (btree_format::kSlots - keep));
  r.n = kLeafMax + 1 - keep;
  std::memcpy(r.slots, all + keep, 8 * r.n);
  r.prev = c;
  r.next = leaf.next;
  l.next = right;
  if (leaf.next != 0) {
    arena_.Put<uint64_t>(leaf.next + offsetof(Node, prev), right);
  } else {
    h_.last_leaf = right;
  }
  arena_.PutChanged(c, leaf, l);
  arena_.Put(right, r);
  const uint64_t sep = NewElement(KeyAt(r.slots[0]));
  if (sep == 0) return false;
  InsertInParent(path, sep, right);
  Save();
  return arena_.ok();
}

void BTree::InsertInParent(Path& path, uint64_t sep, uint64_t right) {
  if (!arena_.ok()) return;
  if (path.empty()) {
    const uint64_t root = NewNode(false);
    if (root == 0) return;
    Node r = LoadNode(root);
    r.n = 2;
    r.slots[0] = h_.root;
    r.slots[1] = right;
    r.slots[kInnerMax] = sep;
    arena_.Put(root, r);
    h_.root = root;
    h_.height++;
    return;
  }
  const auto [p, idx] = path.back();
  path.pop_back();
  const Node old = LoadNode(p);
  // Children and separators with the new pair inserted after child idx.
  uint64_t children[kInnerMax + 1], seps[kInnerMax];
  const uint32_t n = old.n;
  std::memcpy(children, old.slots, 8 * (idx + 1));
  children[idx + 1] = right;
  std::memcpy(children + idx + 2, old.slots + idx + 1, 8 * (n - idx - 1));
  std::memcpy(seps, old.slots + kInnerMax, 8 * idx);
  seps[idx] = sep;
  std::memcpy(seps + idx + 1, old.slots + kInnerMax + idx, 8 * (n - 1 - idx));
  if (n < kInnerMax) {
    Node now = old;
    now.n = n + 1;
    std::memcpy(now.slots, children, 8 * (n + 1));
    std::memcpy(now.slots + kInnerMax, seps, 8 * n);
    arena_.PutChanged(p, old, now);
    return;
  }
  // Split: children [0, keep) stay, separator keep-1 moves up, the rest go right.
  const uint32_t keep = (kInnerMax + 1) / 2;
  const uint64_t r_at = NewNode(false);
  if (r_at == 0) return;
  Node l = old, r = LoadNode(r_at);
  std::memset(l.slots, 0, sizeof(l.slots));
  l.n = keep;
  std::memcpy(l.slots, children, 8 * keep);
  std::memcpy(l.slots + kInnerMax, seps, 8 * (keep - 1));
  r.n = kInnerMax + 1 - keep;
  std::memcpy(r.slots, children + keep, 8 * r.n);
  std::memcpy(r.slots + kInnerMax, seps + keep, 8 * (r.n - 1));
  arena_.PutChanged(p, old, l);
  arena_.Put(r_at, r);
  InsertInParent(path, seps[keep - 1], r_at);
}

bool BTree::Erase(ZKey key) {
  Path path;
  const uint64_t c = Descend(key, &path);
  const Node leaf = LoadNode(c);
  const uint32_t pos = LowerBound(leaf, key);
  if (pos == leaf.n || Compare(key, leaf.slots[pos]) != 0) return false;
  arena_.Free(leaf.slots[pos]);
  h_.count--;
  if (leaf.n > 1 || h_.height == 1) {
    Node now = leaf;
    std::memmove(&now.slots[pos], &now.slots[pos + 1], 8 * (leaf.n - pos - 1));
    now.slots[leaf.n - 1] = 0;
    now.n--;
    arena_.PutChanged(c, leaf, now);
    Save();
    return arena_.ok();
  }
  // The leaf empties: unlink and free it (it is not the root, and the
  // tree keeps other keys: every subtree of a root with >= 2 children
  // holds some).
  if (leaf.prev != 0) {
    arena_.Put<uint64_t>(leaf.prev + offsetof(Node, next), leaf.next);
  } else {
    h_.first_leaf = leaf.next;
  }
  if (leaf.next != 0) {
    arena_.Put<uint64_t>(leaf.next + offsetof(Node, prev), leaf.prev);
  } else {
    h_.last_leaf = leaf.prev;
  }
  arena_.Free(c);
  RemoveFromParent(path);
  // A root with one child is replaced by that child.
  while (h_.height > 1 && arena_.ok()) {
    const Node root = LoadNode(h_.root);
    if (root.n != 1) break;
    arena_.Free(h_.root);
    h_.root = root.slots[0];
    h_.height--;
  }
  Save();
  return arena_.ok();
}

// Removes child path.back() from its parent (the child was freed).
void BTree::RemoveFromParent(Path& path) {
  ABSL_RAW_CHECK(!path.empty(), "BTree: removing the root from a parent");
  const auto [p, idx] = path.back();
  path.pop_back();
  const Node old = LoadNode(p);
  if (old.n == 1) {  // The parent empties too.
    arena_.Free(p);
    RemoveFromParent(path);
    return;
  }
  Node now = old;
  // Child idx goes with separator idx-1 (its lower bound), or with
  // separator 0 for the first child: the neighbour's range widens over
  // an empty range, so every bound stays valid.
  const uint32_t s = idx > 0 ? idx - 1 : 0;
  arena_.Free(old.slots[kInnerMax + s]);
  std::memmove(&now.slots[idx], &now.slots[idx + 1], 8 * (old.n - idx - 1));
  now.slots[old.n - 1] = 0;
  std::memmove(&now.slots[kInnerMax + s], &now.slots[kInnerMax + s + 1], 8 * (old.n - 2 - s));
  now.slots[kInnerMax + old.n - 2] = 0;
  now.n--;
  arena_.PutChanged(p, old, now);
}

void BTree::ScanFrom(double min_score, bool exclusive, const std::function<bool(ZKey)>& fn) const {
  const ZKey probe{min_score, {}};
  uint64_t c = h_.root;
  for (uint64_t level = 1; level < h_.height; ++level) {
    const Node node = LoadNode(c);
    c = node.slots[ChildIndex(node, probe)];
  }
  for (; c != 0; c = LoadNode(c).next) {
    const Node leaf = LoadNode(c);
    for (uint32_t i = 0; i < leaf.n; ++i) {
      const ZKey k = KeyAt(leaf.slots[i]);
      if (k.score < min_score || (exclusive && k.score == min_score)) continue;
      if (!fn(k)) return;
    }
  }
}

void BTree::ScanRank(uint64_t rank, const std::function<bool(ZKey)>& fn) const {
  for (uint64_t c = h_.first_leaf; c != 0;) {
    const Node leaf = LoadNode(c);
    if (rank >= leaf.n) {
      rank -= leaf.n;
    } else {
      for (uint32_t i = static_cast<uint32_t>(rank); i < leaf.n; ++i) {
        if (!fn(KeyAt(leaf.slots[i]))) return;
      }
      rank = 0;
    }
    c = leaf.next;
  }
}

void BTree::ScanBack(const std::function<bool(ZKey)>& fn) const {
  for (uint64_t c = h_.last_leaf; c != 0;) {
    const Node leaf = LoadNode(c);
    for (uint32_t i = leaf.n; i-- > 0;) {
      if (!fn(KeyAt(leaf.slots[i]))) return;
    }
    c = leaf.prev;
  }
}

void BTree::Destroy() {
  std::vector<std::pair<uint64_t, uint64_t>> stack{{h_.root, 1}};
  while (!stack.empty() && arena_.ok()) {
    const auto [c, depth] = stack.back();
    stack.pop_back();
    const Node node = LoadNode(c);
    if (depth == h_.height) {
      for (uint32_t i = 0; i < node.n; ++i) arena_.Free(node.slots[i]);
    } else {
      for (uint32_t i = 0; i < node.n; ++i) stack.emplace_back(node.slots[i], depth + 1);
      for (uint32_t i = 0; i + 1 < node.n; ++i) arena_.Free(node.slots[kInnerMax + i]);
    }
    arena_.Free(c);
  }
  arena_.Free(at_);
}

absl::Status BTree::CheckNode(uint64_t c, uint64_t depth, const uint64_t* lo, const uint64_t* hi,
                              std::vector<uint64_t>& leaves, uint64_t& keys,
                              const std::function<absl::Status(uint64_t)>& own) const {
  if (!arena_.Contains(c, sizeof(Node))) return Damaged("node outside the arena");
  if (auto s = own(c); !s.ok()) return s;
  if (arena_.BlockUsable(c) < sizeof(Node)) return Damaged("node block too small");
  const Node node = LoadNode(c);
  auto element_ok = [&](uint64_t e) -> absl::Status {
    if (!arena_.Contains(e, kElementHeaderBytes)) return Damaged("element outside the arena");
    if (auto s = own(e); !s.ok()) return s;
    if (kElementHeaderBytes + arena_.Load<uint32_t>(e + 8) > arena_.BlockUsable(e)) {
      return Damaged("element larger than its block");
    }
    if (std::isnan(arena_.Load<double>(e))) return Damaged("NaN score");
    return absl::OkStatus();
  };
  auto in_bounds = [&](uint64_t e) {
    return (lo == nullptr || Compare(KeyAt(*lo), e) <= 0) &&
           (hi == nullptr || Compare(KeyAt(*hi), e) > 0);
  };
  const bool leaf = depth == h_.height;
  if (node.leaf != (leaf ? 1u : 0u)) return Damaged("node kind does not match its depth");
  if (leaf) {
    if (node.n > kLeafMax || (node.n == 0 && depth > 1)) return Damaged("bad leaf size");
    for (uint32_t i = 0; i < node.n; ++i) {
      if (auto s = element_ok(node.slots[i]); !s.ok()) return s;
      if (!in_bounds(node.slots[i])) return Damaged("key outside its separators");
      if (i > 0 && CompareKeys(KeyAt(node.slots[i - 1]), KeyAt(node.slots[i])) >= 0) {
        return Damaged("leaf keys out of order");
      }
    }
    keys += node.n;
    leaves.push_back(c);
    return absl::OkStatus();
  }
  if (node.n == 0 || node.n > kInnerMax || (depth == 1 && node.n < 2)) {
    return Damaged("bad inner node size");
  }
  for (uint32_t i = 0; i + 1 < node.n; ++i) {
    const uint64_t sep = node.slots[kInnerMax + i];
    if (auto s = element_ok(sep); !s.ok()) return s;
    if (!in_bounds(sep)) return Damaged("separator outside its bounds");
    if (i > 0 && CompareKeys(KeyAt(node.slots[kInnerMax + i - 1]), KeyAt(sep)) >= 0) {
      return Damaged("separators out of order");
    }
  }
  for (uint32_t i = 0; i < node.n; ++i) {
    const uint64_t* clo = i == 0 ? lo : &node.slots[kInnerMax + i - 1];
    const uint64_t* chi = i + 1 == node.n ? hi : &node.slots[kInnerMax + i];
    if (auto s = CheckNode(node.slots[i], depth + 1, clo, chi, leaves, keys, own); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status BTree::Check(const std::function<absl::Status(uint64_t block)>& own) const {
  if (auto s = own(at_); !s.ok()) return s;
  if (h_.height == 0 || h_.height > 64) return Damaged("bad height");
  std::vector<uint64_t> leaves;
  uint64_t keys = 0;
  if (auto s = CheckNode(h_.root, 1, nullptr, nullptr, leaves, keys, own); !s.ok()) return s;
  if (keys != h_.count) return Damaged(absl::StrFormat("count %d, walk found %d", h_.count, keys));
  if (leaves.front() != h_.first_leaf || leaves.back() != h_.last_leaf) {
    return Damaged("first/last leaf");
  }
  for (size_t i = 0; i < leaves.size(); ++i) {
    const Node leaf = LoadNode(leaves[i]);
    if (leaf.prev != (i == 0 ? 0 : leaves[i - 1]) ||
        leaf.next != (i + 1 == leaves.size() ? 0 : leaves[i + 1])) {
      return Damaged("leaf chain does not match the tree order");
    }
  }
  return absl::OkStatus();
}

}  // namespace blizzard::structures
