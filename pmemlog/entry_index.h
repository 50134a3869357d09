// The volatile index of the live log: the logical ring offset and the term of
// every entry, rebuilt by recovery, so Read and TermAt are O(1) and TermAt
// never touches persistent memory. A growable power-of-two ring buffer:
// compaction pops the front and truncation the back without moving anything,
// and in steady state nothing is allocated.
#ifndef BLIZZARD_PMEMLOG_ENTRY_INDEX_H_
#define BLIZZARD_PMEMLOG_ENTRY_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/internal/raw_logging.h"

namespace blizzard::pmemlog {

struct IndexedEntry {
  uint64_t offset = 0;  // Logical ring offset of the record.
  uint64_t term = 0;
};

class EntryIndex {
 public:
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // The i-th live entry (0 = the first).
  const IndexedEntry& operator[](size_t i) const {
    ABSL_RAW_CHECK(i < size_, "entry index out of range");
    return slots_[(begin_ + i) & (slots_.size() - 1)];
  }
  const IndexedEntry& back() const { return (*this)[size_ - 1]; }

  // Inlined on the append path with the rare Grow kept out of line: called
  // out of line, the entry went through the stack (two 8-byte stores read
  // back as one 16-byte load, which the store buffer cannot forward).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void PushBack(const IndexedEntry& e) {
    if (size_ == slots_.size()) Grow();
    slots_[(begin_ + size_) & (slots_.size() - 1)] = e;
    ++size_;
  }
  // Drops the `n` newest entries.
  void PopBack(size_t n) {
    ABSL_RAW_CHECK(n <= size_, "popping more entries than indexed");
    size_ -= n;
  }
  // Drops the `n` oldest entries.
  void PopFront(size_t n) {
    ABSL_RAW_CHECK(n <= size_, "popping more entries than indexed");
    if (n == 0) return;
    begin_ = (begin_ + n) & (slots_.size() - 1);
    size_ -= n;
  }
  void Clear() { begin_ = size_ = 0; }

 private:
  ABSL_ATTRIBUTE_NOINLINE void Grow() {
    std::vector<IndexedEntry> bigger(slots_.empty() ? 1024 : slots_.size() * 2);
    for (size_t i = 0; i < size_; ++i) bigger[i] = (*this)[i];
    slots_.swap(bigger);
    begin_ = 0;
  }

  std::vector<IndexedEntry> slots_;  // Size is 0 or a power of two.
  size_t begin_ = 0;
  size_t size_ = 0;
};

}  // namespace blizzard::pmemlog

#endif  // BLIZZARD_PMEMLOG_ENTRY_INDEX_H_
