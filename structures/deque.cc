#include "structures/deque.h"

#include "absl/strings/str_format.h"

namespace blizzard::structures {
namespace {

using deque_format::Chunk;
using deque_format::Header;
using deque_format::kChunkSlots;

constexpr uint64_t kSlotsAt = offsetof(Chunk, slots);

absl::Status Damaged(const std::string& why) {
  return absl::DataLossError(absl::StrCat("deque: ", why));
}

}  // namespace

uint64_t Deque::Create(Arena& arena) {
  const uint64_t at = arena.Alloc(sizeof(Header));
  if (at != 0) arena.Put(at, Header{0, 0, 0, 0, 0, 0});
  return at;
}

Deque::Deque(Arena& arena, uint64_t header)
    : arena_(arena), at_(header), h_(arena.Load<Header>(header)) {}

uint64_t Deque::NewElement(std::string_view value) {
  const uint64_t e = arena_.Alloc(4 + value.size());
  if (e == 0) return 0;
  arena_.Put<uint32_t>(e, static_cast<uint32_t>(value.size()));
  arena_.Write(e + 4, value.data(), value.size());
  return e;
}

std::string_view Deque::Element(uint64_t e) const {
  return arena_.Bytes(e + 4, arena_.Load<uint32_t>(e));
}

uint64_t Deque::NewChunk(uint64_t prev, uint64_t next) {
  const uint64_t c = arena_.Alloc(sizeof(Chunk));
  if (c == 0) return 0;
  arena_.Put<uint64_t>(c, prev);
  arena_.Put<uint64_t>(c + 8, next);
  return c;
}

uint32_t Deque::FirstSlot(uint64_t chunk) const { return chunk == h_.head ? h_.head_pos : 0; }
uint32_t Deque::EndSlot(uint64_t chunk) const {
  return chunk == h_.tail ? h_.tail_pos : kChunkSlots;
}

bool Deque::FirstChunk() {
  // Start in the middle: room for pushes at both ends.
  const uint64_t c = NewChunk(0, 0);
  if (c == 0) return false;
  h_.head = h_.tail = c;
  h_.head_pos = h_.tail_pos = kChunkSlots / 2;
  return true;
}

bool Deque::PushBack(std::string_view value) {
  const uint64_t e = NewElement(value);
  if (e == 0) return false;
  if (h_.head == 0) {
    if (!FirstChunk()) return false;
  } else if (h_.tail_pos == kChunkSlots) {
    const uint64_t c = NewChunk(h_.tail, 0);
    if (c == 0) return false;
    arena_.Put<uint64_t>(h_.tail + 8, c);
    h_.tail = c;
    h_.tail_pos = 0;
  }
  arena_.Put<uint64_t>(h_.tail + kSlotsAt + 8 * h_.tail_pos, e);
  h_.tail_pos++;
  h_.count++;
  Save();
  return arena_.ok();
}

bool Deque::PushFront(std::string_view value) {
  const uint64_t e = NewElement(value);
  if (e == 0) return false;
  if (h_.head == 0) {
    if (!FirstChunk()) return false;
  } else if (h_.head_pos == 0) {
    const uint64_t c = NewChunk(0, h_.head);
    if (c == 0) return false;
    arena_.Put<uint64_t>(h_.head, c);
    h_.head = c;
    h_.head_pos = kChunkSlots;
  }
  h_.head_pos--;
  arena_.Put<uint64_t>(h_.head + kSlotsAt + 8 * h_.head_pos, e);
  h_.count++;
  h_.first_seq--;
  Save();
  return arena_.ok();
}

void Deque::Reset() {
  arena_.Free(h_.head);
  const int64_t seq = h_.first_seq;
  h_ = Header{0, 0, 0, 0, 0, seq};
}

std::string Deque::PopFront() {
  ABSL_RAW_CHECK(h_.count > 0, "Deque::PopFront of an empty deque");
  const uint64_t e = arena_.Load<uint64_t>(h_.head + kSlotsAt + 8 * h_.head_pos);
  std::string value(Element(e));
  arena_.Free(e);
  h_.head_pos++;
  h_.count--;
  h_.first_seq++;
  if (h_.count == 0) {
    Reset();
  } else if (h_.head_pos == kChunkSlots) {
    const uint64_t old = h_.head;
    h_.head = arena_.Load<uint64_t>(old + 8);
    arena_.Put<uint64_t>(h_.head, 0);
    h_.head_pos = 0;
    arena_.Free(old);
  }
  Save();
  return value;
}

std::string Deque::PopBack() {
  ABSL_RAW_CHECK(h_.count > 0, "Deque::PopBack of an empty deque");
  h_.tail_pos--;
  const uint64_t e = arena_.Load<uint64_t>(h_.tail + kSlotsAt + 8 * h_.tail_pos);
  std::string value(Element(e));
  arena_.Free(e);
  h_.count--;
  if (h_.count == 0) {
    Reset();
  } else if (h_.tail_pos == 0) {
    const uint64_t old = h_.tail;
    h_.tail = arena_.Load<uint64_t>(old);
    arena_.Put<uint64_t>(h_.tail + 8, 0);
    h_.tail_pos = kChunkSlots;
    arena_.Free(old);
  }
  Save();
  return value;
}

std::string_view Deque::At(uint64_t i) const {
  ABSL_RAW_CHECK(i < h_.count, "Deque::At out of range");
  if (i < h_.count / 2) {
    for (uint64_t c = h_.head;; c = arena_.Load<uint64_t>(c + 8)) {
      const uint64_t n = EndSlot(c) - FirstSlot(c);
      if (i < n) return Element(arena_.Load<uint64_t>(c + kSlotsAt + 8 * (FirstSlot(c) + i)));
      i -= n;
    }
  }
  uint64_t back = h_.count - 1 - i;  // From the tail.
  for (uint64_t c = h_.tail;; c = arena_.Load<uint64_t>(c)) {
    const uint64_t n = EndSlot(c) - FirstSlot(c);
    if (back < n) {
      return Element(arena_.Load<uint64_t>(c + kSlotsAt + 8 * (EndSlot(c) - 1 - back)));
    }
    back -= n;
  }
}

void Deque::Range(uint64_t from, uint64_t to,
                  const std::function<void(std::string_view)>& fn) const {
  ABSL_RAW_CHECK(from <= to && to < h_.count, "Deque::Range out of range");
  uint64_t i = 0;
  for (uint64_t c = h_.head; c != 0 && i <= to; c = arena_.Load<uint64_t>(c + 8)) {
    const uint32_t first = FirstSlot(c), end = EndSlot(c);
    if (i + (end - first) <= from) {  // Skip whole chunks.
      i += end - first;
      continue;
    }
    for (uint32_t s = first; s < end && i <= to; ++s, ++i) {
      if (i >= from) fn(Element(arena_.Load<uint64_t>(c + kSlotsAt + 8 * s)));
    }
  }
}

void Deque::Destroy() {
  for (uint64_t c = h_.head; c != 0 && arena_.ok();) {
    for (uint32_t s = FirstSlot(c); s < EndSlot(c); ++s) {
      arena_.Free(arena_.Load<uint64_t>(c + kSlotsAt + 8 * s));
    }
    const uint64_t next = arena_.Load<uint64_t>(c + 8);
    arena_.Free(c);
    c = next;
  }
  arena_.Free(at_);
}

absl::Status Deque::Check(const std::function<absl::Status(uint64_t block)>& own) const {
  if (auto s = own(at_); !s.ok()) return s;
  if (h_.count == 0) {
    if (h_.head != 0 || h_.tail != 0) return Damaged("empty deque with chunks");
    return absl::OkStatus();
  }
  if (h_.head == 0 || h_.tail == 0 || h_.head_pos >= kChunkSlots || h_.tail_pos == 0 ||
      h_.tail_pos > kChunkSlots || (h_.head == h_.tail && h_.head_pos >= h_.tail_pos)) {
    return Damaged("bad header positions");
  }
  uint64_t n = 0, prev = 0;
  for (uint64_t c = h_.head; c != 0; c = arena_.Load<uint64_t>(c + 8)) {
    if (!arena_.Contains(c, sizeof(Chunk))) return Damaged("chunk outside the arena");
    if (auto s = own(c); !s.ok()) return s;  // Also catches cycles.
    if (arena_.BlockUsable(c) < sizeof(Chunk)) return Damaged("chunk too small");
    if (arena_.Load<uint64_t>(c) != prev) return Damaged("bad prev link");
    for (uint32_t s = FirstSlot(c); s < EndSlot(c); ++s) {
      const uint64_t e = arena_.Load<uint64_t>(c + kSlotsAt + 8 * s);
      if (!arena_.Contains(e, 4)) return Damaged("element outside the arena");
      if (auto st = own(e); !st.ok()) return st;
      if (4 + uint64_t{arena_.Load<uint32_t>(e)} > arena_.BlockUsable(e)) {
        return Damaged("element larger than its block");
      }
      n++;
    }
    prev = c;
    if (n > h_.count) return Damaged("more elements than the count");
  }
  if (prev != h_.tail) return Damaged("tail is not the last chunk");
  if (n != h_.count) return Damaged(absl::StrFormat("count %d, walk found %d", h_.count, n));
  return absl::OkStatus();
}

}  // namespace blizzard::structures
