// A simulated persistent-memory region for tests: the twin of
// PmemPersistence that records stores, flushes and fences over a shadow copy
// of the media, so a test can cut power after any single event and get the
// image that would survive (FORMAT.md section 6 is the fault model).
//
// The region is plain DRAM (64-byte aligned). Each 8-byte word is either
// durable, dirty (stored, not flushed) or flushed (flushed, not yet fenced).
// A crash keeps every durable word; in kTorn mode each other word also keeps
// its newest value with probability 1/2. With evict_probability > 0, a store
// over a word whose older value is not durable may first make that older
// value durable (a cache eviction in between), as real caches do.
//
// Deterministic: one seed drives every random choice. Not thread-safe.
#ifndef BLIZZARD_PMEMLOG_SIM_PERSISTENCE_H_
#define BLIZZARD_PMEMLOG_SIM_PERSISTENCE_H_

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "absl/types/span.h"
#include "pmemlog/persistence.h"

namespace blizzard::pmemlog {

struct SimPersistenceOptions {
  uint64_t size_bytes = 0;  // Multiple of 64.
  uint64_t seed = 1;
  double evict_probability = 0.0;
};

enum class CrashMode {
  kPersistedOnly,  // Only durable words survive.
  kTorn,           // Plus a random subset of the not-yet-durable words.
};

class SimPersistence final : public Persistence {
 public:
  // A zero-filled region, entirely durable.
  explicit SimPersistence(const SimPersistenceOptions& options);
  // A region whose media holds `image` (a restart after a crash): entirely
  // durable. image.size() must equal options.size_bytes.
  SimPersistence(const SimPersistenceOptions& options, absl::Span<const uint8_t> image);
  ~SimPersistence() override;
  SimPersistence(const SimPersistence&) = delete;
  SimPersistence& operator=(const SimPersistence&) = delete;

  uint8_t* base() const override { return mem_; }
  uint64_t size_bytes() const override { return size_bytes_; }
  void Store(void* dst, const void* src, uint64_t len) override;
  void Store64(uint64_t* dst, uint64_t value) override;
  void CopyNoDrain(void* dst, const void* src, uint64_t len) override;
  // Both: the bytes are stored and count as flushed (pending the next
  // Drain), like CopyNoDrain.
  void StreamNoDrain(void* dst, const void* src, uint64_t len) override;
  void Store64NoDrain(uint64_t* dst, uint64_t value) override;
  void Flush(const void* addr, uint64_t len) override;
  void Drain() override;

  // What the media would hold if power failed now. Does not change the
  // region (the test can keep running the same timeline).
  std::vector<uint8_t> CrashImage(CrashMode mode);

  // Called after every event (Store, Store64, CopyNoDrain, StreamNoDrain,
  // Store64NoDrain, Flush, Drain; a
  // Persist is a Flush and a Drain) with the event's 1-based ordinal. The hook
  // must not issue events itself (asserted).
  using EventHook = std::function<void(uint64_t event)>;
  void set_event_hook(EventHook hook) { hook_ = std::move(hook); }

  uint64_t events() const { return events_; }
  // Words whose newest value is not durable yet.
  uint64_t pending_words() const { return pending_.size(); }

 private:
  enum WordState : uint8_t { kDurable = 0, kDirty = 1, kFlushed = 2 };

  uint64_t OffsetOf(const void* addr, uint64_t len) const;
  // Marks the words of [offset, offset + len) dirty, first evicting (with
  // evict_probability) older values that were not durable.
  void BeforeStore(uint64_t offset, uint64_t len);
  void MarkFlushed(uint64_t offset, uint64_t len);
  void EndEvent();

  const uint64_t size_bytes_;
  const double evict_probability_;
  std::mt19937_64 rng_;
  uint8_t* mem_ = nullptr;         // What the CPU sees (caches + media).
  std::vector<uint8_t> media_;     // What is durable.
  std::vector<WordState> state_;   // Per 8-byte word.
  std::vector<uint64_t> pending_;  // Word numbers whose state is not kDurable.
  uint64_t events_ = 0;
  bool in_hook_ = false;
  EventHook hook_;
};

}  // namespace blizzard::pmemlog

#endif  // BLIZZARD_PMEMLOG_SIM_PERSISTENCE_H_
