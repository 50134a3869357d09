// A deque of byte strings on the arena: a doubly linked list of chunks of
// kChunkSlots element offsets (each element its own block). O(1) push and
// pop at both ends, O(n / kChunkSlots) index. Backs Redis lists.
// `first_seq` numbers the front element (push front decrements it, pop
// front increments it), so the keyspace can hash a list's content
// incrementally. Layout: structures/FORMAT.md ("Deque").
#ifndef BLIZZARD_STRUCTURES_DEQUE_H_
#define BLIZZARD_STRUCTURES_DEQUE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "structures/arena.h"

namespace blizzard::structures {

namespace deque_format {
inline constexpr uint32_t kChunkSlots = 60;  // 16 + 480 bytes: a 512-byte block.
struct Header {
  uint64_t count;
  uint64_t head;  // First chunk, 0 when empty.
  uint64_t tail;  // Last chunk.
  uint32_t head_pos;  // First used slot of the head chunk.
  uint32_t tail_pos;  // One past the last used slot of the tail chunk.
  int64_t first_seq;
};
struct Chunk {
  uint64_t prev;
  uint64_t next;
  uint64_t slots[kChunkSlots];
};
// An element: u32 length, then its bytes.
static_assert(sizeof(Header) == 40 && sizeof(Chunk) == 496);
}  // namespace deque_format

class Deque {
 public:
  static uint64_t Create(Arena& arena);  // 0: transaction failed.
  Deque(Arena& arena, uint64_t header);

  uint64_t size() const { return h_.count; }
  int64_t first_seq() const { return h_.first_seq; }
  bool PushFront(std::string_view value);
  bool PushBack(std::string_view value);
  // Requires size() > 0.
  std::string PopFront();
  std::string PopBack();
  // Requires i < size().
  std::string_view At(uint64_t i) const;
  // Elements [from, to] (inclusive, both < size()) in order.
  void Range(uint64_t from, uint64_t to, const std::function<void(std::string_view)>& fn) const;
  void Destroy();
  absl::Status Check(const std::function<absl::Status(uint64_t block)>& own) const;

 private:
  uint64_t NewElement(std::string_view value);
  std::string_view Element(uint64_t e) const;
  uint64_t NewChunk(uint64_t prev, uint64_t next);
  bool FirstChunk();  // Of an empty deque.
  uint32_t FirstSlot(uint64_t chunk) const;  // Used slots of a chunk:
  uint32_t EndSlot(uint64_t chunk) const;    // [FirstSlot, EndSlot).
  void Reset();
  void Save() { arena_.Put(at_, h_); }

  Arena& arena_;
  uint64_t at_;
  deque_format::Header h_;
};

}  // namespace blizzard::structures

#endif  // BLIZZARD_STRUCTURES_DEQUE_H_
