// The arena's per-transaction table of 64-byte lines: the lines the
// backend has snapshotted, and for each the bytes the transaction wrote (a
// 64-bit mask, bit i = byte i of the line). Open addressing with linear
// probing; Clear() resets only the slots in use, so a transaction pays for
// the lines it touches, never for the largest transaction before it (a
// flat_hash_set frees its array on clear() past 127 slots and regrows it
// for the next transaction).
#ifndef BLIZZARD_STRUCTURES_LINE_TABLE_H_
#define BLIZZARD_STRUCTURES_LINE_TABLE_H_

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace blizzard::structures {

class LineTable {
 public:
  struct Entry {
    uint64_t line;
    uint64_t written;  // Bit i: byte i of the line was written.
  };

  LineTable() : slots_(kCapacityMin, Entry{kEmpty, 0}) {}

  // The entry of `line`, or nullptr. Valid until the next Insert or Clear.
  Entry* Find(uint64_t line) {
    for (size_t i = Home(line);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i].line == line) return &slots_[i];
      if (slots_[i].line == kEmpty) return nullptr;
    }
  }
  // The entry of `line`, added with `written` = 0 if absent (`*added`).
  // Valid until the next Insert or Clear.
  Entry* Insert(uint64_t line, bool* added) {
    // Consecutive writes mostly land in the line the previous one did.
    if (slots_[last_].line == line) {
      *added = false;
      return &slots_[last_];
    }
    if (2 * (used_.size() + 1) > slots_.size()) Grow();
    size_t i = Home(line);
    for (; slots_[i].line != kEmpty; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i].line == line) {
        *added = false;
        last_ = i;
        return &slots_[i];
      }
    }
    slots_[i] = Entry{line, 0};
    used_.push_back(static_cast<uint32_t>(i));
    *added = true;
    last_ = i;
    return &slots_[i];
  }
  // Empties the table. Its capacity follows the transactions: after one
  // that filled less than 1/8 of it, it shrinks to 4x that transaction's
  // lines (at least the minimum), so small transactions after a large one
  // probe a table that stays in cache. (It grows at 1/2 full, so a steady
  // transaction size never shrinks it.)
  void Clear() {
    const size_t wanted = std::max(kCapacityMin, 4 * std::bit_ceil(used_.size()));
    if (slots_.size() > 2 * wanted) {
      slots_.assign(wanted, Entry{kEmpty, 0});
      shift_ = 64 - std::countr_zero(wanted);
    } else {
      for (uint32_t i : used_) slots_[i].line = kEmpty;
    }
    used_.clear();
    last_ = 0;
  }
  size_t size() const { return used_.size(); }
  size_t capacity() const { return slots_.size(); }
  // Every entry, in insertion order.
  template <class F>
  void ForEach(F&& f) {
    for (uint32_t i : used_) f(slots_[i]);
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // Not a line of any arena.
  static constexpr size_t kCapacityMin = 256;
  static_assert(std::has_single_bit(kCapacityMin));

  size_t Home(uint64_t line) const {
    // Fibonacci hashing: the top bits of the product, as many as the
    // capacity needs (a power of two).
    return static_cast<size_t>((line * 0x9e3779b97f4a7c15ull) >> shift_);
  }
  void Grow() {
    std::vector<Entry> old;
    old.reserve(used_.size());
    for (uint32_t i : used_) old.push_back(slots_[i]);
    slots_.assign(2 * slots_.size(), Entry{kEmpty, 0});
    --shift_;
    used_.clear();
    last_ = 0;
    for (const Entry& e : old) {
      bool added = false;
      Insert(e.line, &added)->written = e.written;
    }
  }

  std::vector<Entry> slots_;
  int shift_ = 64 - std::countr_zero(kCapacityMin);
  std::vector<uint32_t> used_;  // Slots in use, in insertion order.
  size_t last_ = 0;             // The slot Insert found or filled last (any slot after Clear/Grow).
};

}  // namespace blizzard::structures

#endif  // BLIZZARD_STRUCTURES_LINE_TABLE_H_
