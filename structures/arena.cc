// The arena's allocator, transactions and write sets. Layout:
// structures/FORMAT.md ("Arena").
#include "structures/arena.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "xxhash.h"

namespace blizzard::structures {
namespace {

using arena_format::BlockBytes;
using arena_format::BlockHeader;
using arena_format::Header;
using arena_format::kBlockHeaderBytes;
using arena_format::kClassCount;

uint64_t HeaderChecksum(const Header& h) {
  return XXH3_64bits_withSeed(&h, offsetof(Header, checksum), arena_format::kHeaderSeed);
}

// The bits of line `line` that [offset, end) covers (it covers some).
uint64_t LineBits(uint64_t line, uint64_t offset, uint64_t end) {
  static_assert(arena_format::kSnapshotLineBytes == 64, "one mask bit per byte of a line");
  const uint64_t base = line * arena_format::kSnapshotLineBytes;
  const uint64_t lo = std::max(offset, base) - base;
  const uint64_t hi = std::min(end, base + arena_format::kSnapshotLineBytes) - base;
  return hi - lo == 64 ? ~uint64_t{0} : ((uint64_t{1} << (hi - lo)) - 1) << lo;
}

// The smallest class whose blocks hold `bytes` usable bytes.
uint32_t ClassFor(uint64_t bytes) {
  for (uint32_t c = 0; c < kClassCount; ++c) {
    if (BlockBytes(c) - kBlockHeaderBytes >= bytes) return c;
  }
  return kClassCount;
}

absl::Status Damaged(const std::string& why) {
  return absl::DataLossError(absl::StrCat("arena: ", why));
}

}  // namespace

absl::Status Arena::Format(ArenaMemory* memory) {
  if (memory->size() < arena_format::kArenaBytesMin) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "arena of %d bytes is below %d", memory->size(), arena_format::kArenaBytesMin));
  }
  Arena arena(memory);
  if (auto s = arena.Begin(); !s.ok()) return s;
  Header h{};
  h.magic = arena_format::kMagic;
  h.version = arena_format::kVersion;
  h.class_count = kClassCount;
  h.arena_bytes = memory->size();
  h.heap_offset = arena_format::kHeapOffset;
  h.checksum = HeaderChecksum(h);
  h.bump = arena_format::kHeapOffset;
  arena.Put(0, h);
  arena.Zero(arena_format::kRootOffset, arena_format::kHeapOffset - arena_format::kRootOffset);
  return arena.Commit();
}

absl::StatusOr<std::unique_ptr<Arena>> Arena::Attach(ArenaMemory* memory) {
  if (memory->size() < arena_format::kArenaBytesMin) {
    return Damaged(absl::StrFormat("%d bytes is too small", memory->size()));
  }
  std::unique_ptr<Arena> arena(new Arena(memory));
  const Header h = arena->header();
  if (h.magic != arena_format::kMagic) {
    return absl::FailedPreconditionError("arena: bad magic (not an arena)");
  }
  if (h.checksum != HeaderChecksum(h)) return Damaged("header checksum mismatch");
  if (h.version != arena_format::kVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "arena: version %d, this build reads %d", h.version, arena_format::kVersion));
  }
  if (h.class_count != kClassCount || h.heap_offset != arena_format::kHeapOffset ||
      h.arena_bytes != memory->size()) {
    return Damaged(absl::StrFormat("header fields (classes %d, heap %d, size %d of %d)",
                                   h.class_count, h.heap_offset, h.arena_bytes,
                                   memory->size()));
  }
  if (h.bump < h.heap_offset || h.bump > h.arena_bytes || h.bump % 16 != 0) {
    return Damaged(absl::StrFormat("bump pointer %d outside the heap", h.bump));
  }
  for (uint32_t c = 0; c < kClassCount; ++c) {
    const uint64_t f = h.free_heads[c];
    if (f != 0 && (f < h.heap_offset + kBlockHeaderBytes || f >= h.bump)) {
      return Damaged(absl::StrFormat("free list %d head %d outside the heap", c, f));
    }
  }
  return arena;
}

absl::Status Arena::Begin() {
  ABSL_RAW_CHECK(!in_tx_, "Arena::Begin inside a transaction");
  records_.clear();
  pre_.clear();
  lines_.Clear();
  big_writes_ = false;
  out_of_memory_ = false;
  free_known_at_begin_ = free_known_;
  free_bytes_at_begin_ = free_bytes_;
  status_ = memory_->Begin();
  if (!status_.ok()) return status_;
  in_tx_ = true;
  return absl::OkStatus();
}

void Arena::Write(uint64_t offset, const void* src, uint64_t bytes) {
  ABSL_RAW_CHECK(in_tx_, "Arena::Write outside a transaction");
  if (!status_.ok() || bytes == 0) return;
  ABSL_RAW_CHECK(Contains(offset, bytes), "Arena::Write out of range");
  if (!EnsureSnapshot(offset, bytes, /*written=*/true)) return;
  records_.push_back(Record{offset, bytes, pre_.size()});
  pre_.append(reinterpret_cast<const char*>(memory_->data() + offset), bytes);
  memory_->Store(offset, src, bytes);
}

bool Arena::EnsureSnapshot(uint64_t offset, uint64_t bytes, bool written) {
  using arena_format::kSnapshotLineBytes;
  absl::Status s;
  if (bytes > arena_format::kSnapshotLinesBytesMax) {
    big_writes_ |= written;
    s = memory_->Snapshot(offset, bytes);
  } else {
    const uint64_t first = offset / kSnapshotLineBytes;
    const uint64_t last = (offset + bytes - 1) / kSnapshotLineBytes;
    bool any_new = false;
    for (uint64_t line = first; line <= last; ++line) {
      bool added = false;
      LineTable::Entry* e = lines_.Insert(line, &added);
      any_new |= added;
      if (written) e->written |= LineBits(line, offset, offset + bytes);
    }
    if (!any_new) return true;  // Every line is held already.
    // (If the backend refuses, the transaction has failed: the lines just
    // added are never relied on.)
    const uint64_t start = first * kSnapshotLineBytes;
    const uint64_t end = std::min((last + 1) * kSnapshotLineBytes, size_);
    s = memory_->Snapshot(start, end - start);
  }
  if (!s.ok()) Fail(std::move(s));
  return s.ok();
}

void Arena::RecountWritten() {
  using arena_format::kSnapshotLineBytes;
  lines_.ForEach([](LineTable::Entry& e) { e.written = 0; });
  big_writes_ = false;
  for (const Record& r : records_) {
    if (r.bytes > arena_format::kSnapshotLinesBytesMax) {
      big_writes_ = true;
      continue;
    }
    const uint64_t end = r.offset + r.bytes;
    for (uint64_t line = r.offset / kSnapshotLineBytes; line <= (end - 1) / kSnapshotLineBytes;
         ++line) {
      LineTable::Entry* e = lines_.Find(line);
      ABSL_RAW_CHECK(e != nullptr, "a recorded small write outside the snapshotted lines");
      e->written |= LineBits(line, r.offset, end);
    }
  }
}

void Arena::CountWritten(uint64_t* bytes, uint64_t* ranges) {
  if (big_writes_) {  // Not in the line table: merge the records.
    for (const auto& [start, end] : MergedRanges()) {
      *bytes += end - start;
      ++*ranges;
    }
    return;
  }
  lines_.ForEach([&](LineTable::Entry& e) {
    if (e.written == 0) return;
    *bytes += static_cast<uint64_t>(__builtin_popcountll(e.written));
    // A range starts at a written byte whose predecessor was not written
    // (the last byte of the line before, for byte 0).
    uint64_t starts = e.written & ~(e.written << 1);
    if ((e.written & 1) != 0 && e.line > 0) {
      const LineTable::Entry* before = lines_.Find(e.line - 1);
      if (before != nullptr && (before->written >> 63) != 0) starts &= ~uint64_t{1};
    }
    *ranges += static_cast<uint64_t>(__builtin_popcountll(starts));
  });
}

void Arena::Zero(uint64_t offset, uint64_t bytes) {
  // In pieces: no large temporary.
  static const uint8_t kZeros[4096] = {};
  while (bytes > 0 && ok()) {
    const uint64_t n = std::min<uint64_t>(bytes, sizeof(kZeros));
    Write(offset, kZeros, n);
    offset += n;
    bytes -= n;
  }
}

uint64_t Arena::Alloc(uint64_t bytes) {
  ABSL_RAW_CHECK(in_tx_, "Arena::Alloc outside a transaction");
  if (!ok()) return 0;
  const uint32_t c = ClassFor(std::max<uint64_t>(bytes, 1));
  if (c >= kClassCount) {
    out_of_memory_ = true;
    Fail(absl::ResourceExhaustedError(
        absl::StrFormat("allocation of %d bytes exceeds %d", bytes, arena_format::kAllocBytesMax)));
    return 0;
  }
  uint64_t block = PopFree(c);
  uint32_t got = c;  // The class of the block handed out.
  if (block == 0) {
    const uint64_t bump = Load<uint64_t>(offsetof(Header, bump));
    if (BlockBytes(c) <= size_ - bump) {
      block = bump;
      Put<uint64_t>(offsetof(Header, bump), bump + BlockBytes(c));
    } else {
      block = SplitLarger(c, &got);
      if (block == 0 && ok()) {
        out_of_memory_ = true;
        Fail(absl::ResourceExhaustedError(absl::StrFormat(
            "arena full: %d bytes wanted, %d left uncarved of %d and no larger free block",
            BlockBytes(c), size_ - bump, size_)));
      }
      if (block == 0) return 0;
    }
  }
  // The caller writes the new block next: one snapshot for its header and
  // (up to kSnapshotLinesBytesMax) its payload instead of one per write.
  if (!EnsureSnapshot(block, std::min(BlockBytes(got), arena_format::kSnapshotLinesBytesMax),
                      /*written=*/false)) {
    return 0;
  }
  Put(block, BlockHeader{arena_format::kBlockMagic, static_cast<uint8_t>(got),
                         arena_format::kBlockUsed, 0});
  return ok() ? block + kBlockHeaderBytes : 0;
}

uint64_t Arena::PopFree(uint32_t c) {
  const uint64_t heads_at = offsetof(Header, free_heads) + 8 * c;
  const uint64_t head = Load<uint64_t>(heads_at);
  if (head == 0) return 0;
  // LIFO free list through the first 8 payload bytes.
  const uint64_t block = head - kBlockHeaderBytes;
  const BlockHeader bh = Load<BlockHeader>(block);
  ABSL_RAW_CHECK(bh.magic == arena_format::kBlockMagic && bh.size_class == c &&
                     bh.state == arena_format::kBlockFree,
                 "arena free list names a block that is not free");
  Put<uint64_t>(heads_at, Load<uint64_t>(head));
  if (free_known_) free_bytes_ -= BlockBytes(c);
  return block;
}

void Arena::PushFree(uint64_t block, uint32_t c) {
  const uint64_t heads_at = offsetof(Header, free_heads) + 8 * c;
  Put(block,
      BlockHeader{arena_format::kBlockMagic, static_cast<uint8_t>(c), arena_format::kBlockFree, 0});
  Put<uint64_t>(block + kBlockHeaderBytes, Load<uint64_t>(heads_at));
  Put<uint64_t>(heads_at, block + kBlockHeaderBytes);
  if (free_known_) free_bytes_ += BlockBytes(c);
}

uint64_t Arena::SplitLarger(uint32_t c, uint32_t* got) {
  for (uint32_t big = c + 1; big < kClassCount; ++big) {
    if (Load<uint64_t>(offsetof(Header, free_heads) + 8 * big) == 0) continue;
    const uint64_t block = PopFree(big);
    uint64_t rest = BlockBytes(big) - BlockBytes(c);
    if (rest < BlockBytes(0)) {  // 16 bytes: no block; hand out all of it.
      *got = big;
      return block;
    }
    // The rest, back to back after the block handed out, as free blocks of
    // the largest classes that fit, never leaving 16 bytes (sizes are
    // multiples of 16 and neighbouring classes differ by at least 16, so
    // the next smaller class then fits and leaves at least 32).
    uint64_t at = block + BlockBytes(c);
    uint32_t k = big;
    while (rest > 0 && ok()) {
      while (BlockBytes(k) > rest || rest - BlockBytes(k) == 16) --k;
      PushFree(at, k);
      at += BlockBytes(k);
      rest -= BlockBytes(k);
    }
    *got = c;
    return ok() ? block : 0;
  }
  return 0;
}

uint64_t Arena::AllocZeroed(uint64_t bytes) {
  const uint64_t p = Alloc(bytes);
  if (p != 0) Zero(p, bytes);
  return p;
}

uint64_t Arena::UsableBytes(uint64_t offset) const {
  const BlockHeader bh = Load<BlockHeader>(offset - kBlockHeaderBytes);
  ABSL_RAW_CHECK(bh.magic == arena_format::kBlockMagic && bh.state == arena_format::kBlockUsed &&
                     bh.size_class < kClassCount,
                 "Arena::UsableBytes of a block that is not in use");
  return BlockBytes(bh.size_class) - kBlockHeaderBytes;
}

uint64_t Arena::BlockUsable(uint64_t offset) const {
  const uint64_t bump = Load<uint64_t>(offsetof(Header, bump));
  if (offset < arena_format::kHeapOffset + kBlockHeaderBytes || offset >= bump ||
      offset % 8 != 0) {
    return 0;
  }
  const BlockHeader bh = Load<BlockHeader>(offset - kBlockHeaderBytes);
  if (bh.magic != arena_format::kBlockMagic || bh.state != arena_format::kBlockUsed ||
      bh.size_class >= kClassCount ||
      BlockBytes(bh.size_class) > bump - (offset - kBlockHeaderBytes)) {
    return 0;
  }
  return BlockBytes(bh.size_class) - kBlockHeaderBytes;
}

void Arena::Free(uint64_t offset) {
  ABSL_RAW_CHECK(in_tx_, "Arena::Free outside a transaction");
  if (!ok()) return;
  const uint64_t block = offset - kBlockHeaderBytes;
  const BlockHeader bh = Load<BlockHeader>(block);
  ABSL_RAW_CHECK(bh.magic == arena_format::kBlockMagic && bh.state == arena_format::kBlockUsed &&
                     bh.size_class < kClassCount,
                 "Arena::Free of a block that is not in use (double free?)");
  PushFree(block, bh.size_class);
}

Arena::Savepoint Arena::Mark() const {
  ABSL_RAW_CHECK(in_tx_, "Arena::Mark outside a transaction");
  return Savepoint{records_.size(), pre_.size(), free_known_, free_bytes_};
}

void Arena::RollbackTo(const Savepoint& sp) {
  ABSL_RAW_CHECK(in_tx_, "Arena::RollbackTo outside a transaction");
  ABSL_RAW_CHECK(status_.ok() || out_of_memory_, "Arena::RollbackTo after a backend error");
  ABSL_RAW_CHECK(sp.records <= records_.size() && sp.pre_bytes <= pre_.size(),
                 "Arena::RollbackTo a savepoint of another transaction");
  for (size_t k = records_.size(); k-- > sp.records;) {
    const Record& r = records_[k];
    // Already covered by this transaction's snapshots (the write being
    // undone took them); snapshotting again is redundant for the contract
    // but cheap on this rare path, and libpmemobj logs nothing new for a
    // range it already holds.
    if (auto s = memory_->Snapshot(r.offset, r.bytes); !s.ok()) {
      status_ = std::move(s);
      out_of_memory_ = false;
      return;
    }
    memory_->Store(r.offset, pre_.data() + r.pre_at, r.bytes);
  }
  records_.resize(sp.records);
  pre_.resize(sp.pre_bytes);
  RecountWritten();
  free_known_ = sp.free_known;
  free_bytes_ = sp.free_bytes;
  status_ = absl::OkStatus();
  out_of_memory_ = false;
}

uint64_t Arena::WalkFreeBytes() const {
  const Header h = header();
  // Every free block takes >= 32 bytes of the carved heap: a longer walk
  // means a cycle (damage, which Verify reports); stop rather than loop.
  uint64_t budget = (h.bump - h.heap_offset) / BlockBytes(0);
  uint64_t bytes = 0;
  for (uint32_t c = 0; c < kClassCount; ++c) {
    for (uint64_t f = h.free_heads[c]; f != 0 && budget > 0; --budget) {
      if (f < h.heap_offset + kBlockHeaderBytes || f + 8 > h.bump) break;
      bytes += BlockBytes(c);
      f = Load<uint64_t>(f);
    }
  }
  return bytes;
}

uint64_t Arena::UsedBytes() const {
  if (!free_known_) {
    free_bytes_ = WalkFreeBytes();
    free_known_ = true;
  }
  const uint64_t carved = header().bump - arena_format::kHeapOffset;
  return carved > free_bytes_ ? carved - free_bytes_ : 0;
}

std::vector<std::pair<uint64_t, uint64_t>> Arena::MergedRanges() const {
  std::vector<std::pair<uint64_t, uint64_t>> sorted;  // [start, end)
  sorted.reserve(records_.size());
  for (const Record& r : records_) sorted.emplace_back(r.offset, r.offset + r.bytes);
  std::sort(sorted.begin(), sorted.end());
  // Merge overlapping and adjacent records.
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (const auto& [start, end] : sorted) {
    if (!merged.empty() && start <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, end);
    } else {
      merged.emplace_back(start, end);
    }
  }
  return merged;
}

void Arena::BuildWriteSet(WriteSet* out) const {
  out->arena_bytes = size_;
  out->ranges.clear();
  const std::vector<std::pair<uint64_t, uint64_t>> merged = MergedRanges();
  out->ranges.resize(merged.size());
  for (size_t i = 0; i < merged.size(); ++i) {
    WriteRange& w = out->ranges[i];
    w.offset = merged[i].first;
    w.post = std::string(Bytes(w.offset, merged[i].second - w.offset));
    w.pre = w.post;  // Every byte is covered by some record below.
  }
  // Pre-images: the first record of each byte holds its value before the
  // transaction, so copy newest first and let older ones overwrite.
  for (size_t k = records_.size(); k-- > 0;) {
    const Record& r = records_[k];
    auto it = std::upper_bound(merged.begin(), merged.end(), r.offset,
                               [](uint64_t off, const auto& m) { return off < m.first; });
    const size_t m = static_cast<size_t>(it - merged.begin()) - 1;
    std::memcpy(out->ranges[m].pre.data() + (r.offset - merged[m].first), pre_.data() + r.pre_at,
                r.bytes);
  }
}

absl::Status Arena::Commit(WriteSet* out) {
  ABSL_RAW_CHECK(in_tx_, "Arena::Commit outside a transaction");
  if (!status_.ok()) {
    absl::Status s = status_;
    Abort();
    return s;
  }
  // Logical mode needs only the counts: no images are copied then.
  uint64_t bytes = 0, ranges = 0;
  if (out != nullptr) {
    BuildWriteSet(out);
    bytes = out->bytes();
    ranges = out->ranges.size();
  } else {
    CountWritten(&bytes, &ranges);
  }
  in_tx_ = false;
  if (auto s = memory_->Commit(); !s.ok()) {
    free_known_ = false;  // Rolled back by the backend: count again.
    return s;
  }
  stats_.transactions++;
  stats_.bytes_written += bytes;
  stats_.ranges_written += ranges;
  records_.clear();
  pre_.clear();
  lines_.Clear();
  return absl::OkStatus();
}

void Arena::Abort() {
  ABSL_RAW_CHECK(in_tx_, "Arena::Abort outside a transaction");
  in_tx_ = false;
  memory_->Abort();
  records_.clear();
  pre_.clear();
  lines_.Clear();
  free_known_ = free_known_at_begin_;
  free_bytes_ = free_bytes_at_begin_;
}

absl::Status Arena::WritePostImages(const WriteSet& ws) {
  ABSL_RAW_CHECK(in_tx_, "Arena::WritePostImages outside a transaction");
  if (ws.arena_bytes != size_) {
    return absl::InvalidArgumentError(
        absl::StrFormat("write set for an arena of %d bytes, this one has %d", ws.arena_bytes,
                        size_));
  }
  for (const WriteRange& r : ws.ranges) {
    if (r.post.empty() || !Contains(r.offset, r.post.size())) {
      return absl::InvalidArgumentError("write set range outside the arena");
    }
  }
  for (const WriteRange& r : ws.ranges) Write(r.offset, r.post.data(), r.post.size());
  free_known_ = false;  // The ranges may hold allocator metadata.
  return status_;
}

void Arena::ResetRecording() {
  ABSL_RAW_CHECK(in_tx_, "Arena::ResetRecording outside a transaction");
  records_.clear();
  pre_.clear();
  RecountWritten();
}

absl::Status Arena::RecordedWriteSet(WriteSet* out) const {
  ABSL_RAW_CHECK(in_tx_, "Arena::RecordedWriteSet outside a transaction");
  if (!status_.ok()) return status_;
  BuildWriteSet(out);
  return absl::OkStatus();
}

absl::Status Arena::ApplyWriteSet(const WriteSet& ws, WriteSet* out) {
  if (auto s = Begin(); !s.ok()) return s;
  if (auto s = WritePostImages(ws); !s.ok()) {
    Abort();
    return s;
  }
  return Commit(out);
}

absl::Status Arena::UndoWriteSet(const WriteSet& ws) {
  for (const WriteRange& r : ws.ranges) {
    if (r.pre.size() != r.post.size() || !Contains(r.offset, r.pre.size())) {
      return absl::InvalidArgumentError("write set without pre-images cannot be undone");
    }
  }
  if (auto s = Begin(); !s.ok()) return s;
  for (const WriteRange& r : ws.ranges) Write(r.offset, r.pre.data(), r.pre.size());
  free_known_ = false;  // The ranges may hold allocator metadata.
  return Commit();
}

absl::Status Arena::CheckHeap(const std::function<void(uint64_t)>& used,
                              HeapShape* shape) const {
  const Header h = header();
  HeapShape sh;
  sh.arena_bytes = size_;
  sh.heap_bytes = h.bump - h.heap_offset;
  // Free blocks by payload offset -> class, from the walk.
  absl::flat_hash_map<uint64_t, uint32_t> free_blocks;
  for (uint64_t b = h.heap_offset; b < h.bump;) {
    if (h.bump - b < kBlockHeaderBytes) return Damaged(absl::StrFormat("torn block at %d", b));
    const BlockHeader bh = Load<BlockHeader>(b);
    if (bh.magic != arena_format::kBlockMagic || bh.size_class >= kClassCount ||
        bh.reserved != 0 ||
        (bh.state != arena_format::kBlockUsed && bh.state != arena_format::kBlockFree)) {
      return Damaged(absl::StrFormat("bad block header at %d", b));
    }
    const uint64_t n = BlockBytes(bh.size_class);
    if (n > h.bump - b) return Damaged(absl::StrFormat("block at %d runs past the heap", b));
    if (bh.state == arena_format::kBlockUsed) {
      sh.blocks_used++;
      sh.bytes_used += n;
      if (used) used(b + kBlockHeaderBytes);
    } else {
      free_blocks.emplace(b + kBlockHeaderBytes, bh.size_class);
    }
    b += n;
  }
  uint64_t listed = 0;
  for (uint32_t c = 0; c < kClassCount; ++c) {
    for (uint64_t f = h.free_heads[c]; f != 0; f = Load<uint64_t>(f)) {
      auto it = free_blocks.find(f);
      if (it == free_blocks.end() || it->second != c) {
        return Damaged(absl::StrFormat("free list %d names %d, not a free block of its class (or "
                                       "listed twice)",
                                       c, f));
      }
      free_blocks.erase(it);  // A second visit (cycle, sharing) fails above.
      listed++;
      sh.bytes_free += BlockBytes(c);
    }
  }
  if (!free_blocks.empty()) {
    return Damaged(absl::StrFormat("%d free blocks on no free list (leaked)", free_blocks.size()));
  }
  sh.blocks_free = listed;
  if (shape != nullptr) *shape = sh;
  return absl::OkStatus();
}

}  // namespace blizzard::structures
